/**
 * End to end through the CLI: `generate` and `upscale` on the converted tiny checkpoints with `.npy` output reproduce
 * diffusers' references (within 2e-3), image outputs are named and encoded as documented, and `deno task generate`
 * is wired to the same code.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { decodeImage, decodeNpy, encodeNpy, sniffImageFormat } from "@ldm/core/image";
import { main as generate } from "../cli/generate.ts";
import { main as upscale } from "../cli/upscale.ts";
import type { CliIo } from "../cli/_common.ts";
import { convertedFixtures, maxAbsDiff, reference, T2I_PROMPT, TINY } from "./_pipeline_fixtures.ts";

function captureIo(): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [], err: string[] = [];
  return { out, err, stdout: (t) => void out.push(t), stderr: (t) => void err.push(t), isTerminal: false };
}

Deno.test("deno task generate / upscale with .npy output reproduce diffusers' references", async (t) => {
  const { root, t2i, sr } = await convertedFixtures();
  const latentsFile = join(root, "latents.npy");
  await Deno.writeFile(latentsFile, encodeNpy(await reference("t2i.latents")));
  const t2iRuns = [
    ["ddim_g6_s5", ["--guidance", "6", "--steps", "5"]],
    ["ddim_g1_s5", ["--guidance", "1", "--steps", "5"]],
    ["ddim_g6_s50", ["--guidance", "6", "--steps", "50"]],
    ["pndm_g6_s5", [
      "--guidance",
      "6",
      "--steps",
      "5",
      "--scheduler",
      "pndm",
      "--scheduler-config",
      '{"skip_prk_steps":true}',
    ]],
  ] as const;
  for (const [name, flags] of t2iRuns) {
    await t.step(`generate ${name}`, async () => {
      const out = join(root, `${name}.npy`);
      const io = captureIo();
      const code = await generate(
        ["--prompt", T2I_PROMPT, "--latents", latentsFile, "--model", t2i, "--out", out, ...flags],
        io,
      );
      assert.equal(code, 0, io.err.join(""));
      assert.deepEqual(io.out, [`${out}\n`]);
      const err = maxAbsDiff(decodeNpy(await Deno.readFile(out)), await reference(`t2i.${name}`));
      assert.ok(err <= 2e-3, `t2i.${name} through the CLI: max |Δ| = ${err}`);
    });
  }
  for (const steps of [5, 20]) {
    await t.step(`upscale ddim_s${steps}_seed0`, async () => {
      const out = join(root, `sr${steps}.npy`);
      const io = captureIo();
      const image = join(TINY, "sr_input.png");
      const code = await upscale([
        "--image",
        image,
        "--steps",
        String(steps),
        "--seed",
        "0",
        "--model",
        sr,
        "--out",
        out,
      ], io);
      assert.equal(code, 0, io.err.join(""));
      const err = maxAbsDiff(decodeNpy(await Deno.readFile(out)), await reference(`sr.ddim_s${steps}_seed0`));
      assert.ok(err <= 2e-3, `sr.ddim_s${steps}_seed0 through the CLI: max |Δ| = ${err}`);
    });
  }
});

Deno.test("generate names several images out-0.png, out-1.png … and writes PNG, JPEG and WebP", async () => {
  const { root, t2i } = await convertedFixtures();
  const io = captureIo();
  const base = ["--prompt", "a red circle", "--model", t2i, "--steps", "2", "--seed", "5", "--quiet"];
  assert.equal(await generate([...base, "--num-images", "2", "--out", join(root, "pair.png")], io), 0, io.err.join(""));
  assert.deepEqual(io.out, [`${join(root, "pair-0.png")}\n`, `${join(root, "pair-1.png")}\n`]);
  const png = await decodeImage(await Deno.readFile(join(root, "pair-1.png")));
  assert.deepEqual([png.width, png.height], [32, 32]);
  assert.match(io.err.join(""), /wrote 2 files, 32×32, seed 5, DDIMScheduler 2 steps/);
  assert.equal(await generate([...base, "--out", join(root, "one.jpg")], captureIo()), 0);
  assert.equal(sniffImageFormat(await Deno.readFile(join(root, "one.jpg"))), "jpeg");
  assert.equal(await generate([...base, "--out", join(root, "one.webp"), "--quality", "70"], captureIo()), 0);
  assert.equal(sniffImageFormat(await Deno.readFile(join(root, "one.webp"))), "webp");
  // A .npy holds all images in one [N, H, W, 3] array.
  assert.equal(await generate([...base, "--num-images", "3", "--out", join(root, "three.npy")], captureIo()), 0);
  assert.deepEqual(decodeNpy(await Deno.readFile(join(root, "three.npy"))).shape, [3, 32, 32, 3]);
});

Deno.test("the CLI reports bad input files and model folders with exit status 2", async () => {
  const { root, t2i } = await convertedFixtures();
  const notPng = join(root, "not-an-image.png");
  await Deno.writeTextFile(notPng, "hello");
  let io = captureIo();
  assert.equal(await upscale(["--image", notPng, "--out", join(root, "x.png"), "--model", t2i], io), 2);
  assert.match(io.err.join(""), /--image .*not-an-image\.png: unsupported image format: not a PNG or JPEG file/);
  io = captureIo();
  assert.equal(
    await upscale(["--image", join(TINY, "sr_input.png"), "--out", join(root, "x.png"), "--model", t2i], io),
    2,
  );
  assert.match(
    io.err.join(""),
    /model_index\.json names "LDMTextToImagePipeline"; this pipeline loads LDMSuperResolutionPipeline/,
  );
  io = captureIo();
  assert.equal(
    await generate(["--prompt", "p", "--out", join(root, "x.png"), "--model", join(root, "nowhere")], io),
    2,
  );
  assert.match(io.err.join(""), /model_index\.json not found \(is .*nowhere a converted repository\?\)/);
  io = captureIo();
  const bad = join(root, "bad.npy");
  await Deno.writeFile(bad, new Uint8Array([1, 2, 3]));
  assert.equal(
    await generate(["--prompt", "p", "--latents", bad, "--out", join(root, "x.png"), "--model", t2i], io),
    2,
  );
  assert.match(io.err.join(""), /--latents .*bad\.npy: not a \.npy file/);
  io = captureIo();
  const wrong = join(root, "wrong.npy");
  await Deno.writeFile(wrong, encodeNpy((await reference("t2i.latents")).reshape([4, 16, 16])));
  assert.equal(
    await generate(["--prompt", "p", "--latents", wrong, "--out", join(root, "x.png"), "--model", t2i], io),
    2,
  );
  assert.match(io.err.join(""), /--latents .*wrong\.npy must hold an \[N, C, h, w\] array: got \[4, 16, 16\]/);
});

Deno.test("`deno task generate` runs the CLI in a subprocess: --help, exit codes, a real image", async () => {
  const { root, t2i } = await convertedFixtures();
  const run = async (args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["task", "-q", "generate", ...args],
      cwd: new URL("..", import.meta.url).pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
  };
  const help = await run(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--guidance W +classifier-free guidance weight; <= 1 disables it \(default 5/);
  const bad = await run(["--prompt", "p", "--steps", "many", "--out", "x.png"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /error: --steps must be an integer: got "many"/);
  const out = join(root, "task.png");
  const ok = await run(["--prompt", "a red circle", "--model", t2i, "--steps", "3", "--seed", "1", "--out", out]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, `${out}\n`);
  assert.match(ok.stderr, /generate \[#+\] 3\/3 steps/);
  assert.equal(sniffImageFormat(await Deno.readFile(out)), "png");
});
