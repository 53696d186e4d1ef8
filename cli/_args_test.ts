import assert from "node:assert/strict";
import { type FlagSpec, formatHelp, parseFlags, UsageError } from "./_args.ts";

const SPECS: FlagSpec[] = [
  { name: "prompt", type: "string", required: true, help: "what" },
  { name: "steps", type: "integer", value: "N", help: "how many" },
  { name: "guidance", type: "number", help: "how strong" },
  { name: "quiet", type: "boolean", help: "shh" },
  { name: "help", type: "boolean", help: "help" },
];

Deno.test("parseFlags() reads --name value, --name=value and boolean flags", () => {
  assert.deepEqual(parseFlags(["--prompt", "a b", "--steps=5", "--guidance", "-1.5", "--quiet"], SPECS), {
    prompt: "a b",
    steps: 5,
    guidance: -1.5,
    quiet: true,
  });
  assert.deepEqual(parseFlags(["--prompt=--x=y"], SPECS), { prompt: "--x=y" });
  assert.deepEqual(parseFlags(["--help"], SPECS), { help: true }, "--help skips the required check");
});

Deno.test("parseFlags() rejects bad command lines with a UsageError naming the flag", () => {
  const cases: [string[], RegExp][] = [
    [["--prompt", "p", "--stepz", "3"], /unknown flag --stepz \(did you mean --steps\?\)/],
    [["--prompt", "p", "--xyzzy"], /^unknown flag --xyzzy$/],
    [["--prompt", "p", "--steps", "abc"], /--steps must be an integer: got "abc"/],
    [["--prompt", "p", "--steps", "2.5"], /--steps must be an integer: got "2.5"/],
    [["--prompt", "p", "--guidance", ""], /--guidance must be a number: got ""/],
    [["--prompt", "p", "--guidance", "1e999"], /--guidance must be a number: got "1e999"/],
    [["--prompt", "p", "--steps"], /--steps needs a value \(N\)/],
    [["--prompt", "--steps", "3"], /--prompt needs a value/],
    [["--prompt", "p", "--prompt", "q"], /--prompt is given more than once/],
    [["--prompt", "p", "extra"], /unexpected argument "extra"/],
    [["--quiet=yes", "--prompt", "p"], /--quiet takes no value: got "yes"/],
    [["--steps", "3"], /--prompt is required/],
  ];
  for (const [args, re] of cases) {
    assert.throws(
      () => parseFlags(args, SPECS),
      (e: Error) => e instanceof UsageError && re.test(e.message),
      args.join(" "),
    );
  }
});

Deno.test("formatHelp() lists every flag with its placeholder and marks required ones", () => {
  const help = formatHelp("tool --prompt X", "Does things.", SPECS, "Footer.");
  assert.match(help, /^Usage: tool --prompt X\n\nDoes things\.\n\nOptions:\n/);
  assert.match(help, / {2}--prompt VALUE +\(required\) what\n/);
  assert.match(help, / {2}--steps N +how many\n/);
  assert.match(help, / {2}--quiet +shh\n/);
  assert.ok(help.endsWith("Footer.\n"));
});
