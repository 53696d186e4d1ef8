/**
 * The CLI commands' argument handling (no model needed: every error here is raised before a model loads). Runs with
 * real models are in tests/cli_e2e_test.ts.
 */
import assert from "node:assert/strict";
import { main as generate } from "./generate.ts";
import { main as upscale } from "./upscale.ts";
import { type CliIo, outputPaths } from "./_common.ts";

function captureIo(): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [], err: string[] = [];
  return { out, err, stdout: (t) => void out.push(t), stderr: (t) => void err.push(t), isTerminal: false };
}

async function run(main: typeof generate, args: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = captureIo();
  const code = await main(args, io);
  return { code, out: io.out.join(""), err: io.err.join("") };
}

Deno.test("generate --help and upscale --help print usage, defaults and output naming", async () => {
  const g = await run(generate, ["--help"]);
  assert.equal(g.code, 0);
  assert.match(g.out, /^Usage: deno task generate --prompt "\.\.\." --out out\.png \[options\]/);
  for (
    const flag of [
      "prompt",
      "negative-prompt",
      "steps",
      "guidance",
      "eta",
      "seed",
      "scheduler",
      "latents",
      "width",
      "height",
      "num-images",
      "model",
      "provider",
      "out",
    ]
  ) {
    assert.match(g.out, new RegExp(`\\n  --${flag} `), flag);
  }
  assert.match(g.out, /default 5, good for the built-in model/);
  assert.match(g.out, /out\.png becomes out-0\.png, out-1\.png/);
  const u = await run(upscale, ["--help"]);
  assert.equal(u.code, 0);
  for (const flag of ["image", "steps", "eta", "seed", "tile-size", "model", "out"]) {
    assert.match(u.out, new RegExp(`\\n  --${flag} `));
  }
});

Deno.test("generate and upscale reject bad flags and values with exit status 2 and a hint", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/o.png`;
    const cases: [typeof generate, string[], RegExp][] = [
      [generate, ["--out", out], /error: --prompt is required\nRun with --help for usage\./],
      [generate, ["--prompt", "p"], /--out is required/],
      [
        generate,
        ["--prompt", "p", "--out", out, "--guidence", "5"],
        /unknown flag --guidence \(did you mean --guidance\?\)/,
      ],
      [generate, ["--prompt", "p", "--out", out, "--steps", "ten"], /--steps must be an integer: got "ten"/],
      [generate, ["--prompt", "p", "--out", out, "--seed", "1.5"], /--seed must be an integer: got "1.5"/],
      [generate, ["--prompt", "p", "--out", out, "--guidance", "x"], /--guidance must be a number: got "x"/],
      [
        generate,
        ["--prompt", "p", "--out", `${dir}/o.gif`],
        /--out must end in \.png, \.jpg, \.jpeg, \.webp or \.npy: got/,
      ],
      [generate, ["--prompt", "p", "--out", `${dir}/missing/o.png`], /--out folder .*missing does not exist/],
      [
        generate,
        ["--prompt", "p", "--out", out, "--scheduler", "heun"],
        /--scheduler must be one of ddim, pndm, lms, euler, euler-ancestral, dpm-multistep: got "heun"/,
      ],
      [
        generate,
        ["--prompt", "p", "--out", out, "--scheduler-config", "{oops"],
        /--scheduler-config must be a JSON object/,
      ],
      [
        generate,
        ["--prompt", "p", "--out", out, "--latents", `${dir}/none.npy`],
        /--latents file .*none\.npy does not exist/,
      ],
      [generate, ["--prompt", "p", "--out", out, "--quality", "0"], /--quality must be in \[1, 100\]: got 0/],
      [
        generate,
        ["--prompt", "p", "--out", out, "--provider", " , "],
        /--provider must list at least one execution provider/,
      ],
      [upscale, ["--out", out], /--image is required/],
      [upscale, ["--image", `${dir}/none.png`, "--out", out], /--image file .*none\.png does not exist/],
      [
        upscale,
        ["--image", "x.png", "--out", out, "--tile-size", "big"],
        /--tile-size must be an integer or "auto": got "big"/,
      ],
      [upscale, ["--image", "x.png", "--out", out, "extra"], /unexpected argument "extra"/],
    ];
    for (const [main, args, re] of cases) {
      const r = await run(main, args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
      assert.match(r.err, re, args.join(" "));
      assert.equal(r.out, "");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("outputPaths() keeps one name and numbers several", () => {
  assert.deepEqual(outputPaths("out.png", 1), ["out.png"]);
  assert.deepEqual(outputPaths("dir/out.png", 3), ["dir/out-0.png", "dir/out-1.png", "dir/out-2.png"]);
  assert.deepEqual(outputPaths("a.b/img.webp", 2), ["a.b/img-0.webp", "a.b/img-1.webp"]);
});
