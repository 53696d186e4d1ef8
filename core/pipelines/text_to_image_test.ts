import assert from "node:assert/strict";
import { Tensor } from "../tensor/mod.ts";
import { Generator } from "../random/mod.ts";
import { LDMTextToImagePipeline } from "./text_to_image.ts";
import { SCHEDULER_NAME_LIST } from "./_checks.ts";
import { fakeBert, fakeDecoder, type FakeModel, fakeTokenizer, fakeUNet, T2I_CONFIGS } from "./_fake_models.ts";
import type { BatchItemResult, StepProgress } from "./types.ts";

function makePipeline() {
  const bert = fakeBert(), unet = fakeUNet(), vaeDecoder = fakeDecoder(2);
  const pipe = new LDMTextToImagePipeline({ bert, unet, vaeDecoder, tokenizer: fakeTokenizer, ...T2I_CONFIGS });
  return { pipe, bert, unet, vaeDecoder };
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  let m = 0;
  for (let i = 0; i < a.size; i++) m = Math.max(m, Math.abs(a.data[i]! - b.data[i]!));
  return m;
}

function assertImages(t: Tensor, shape: number[]): void {
  assert.deepEqual(t.shape, shape);
  for (const v of t.data) assert.ok(v >= 0 && v <= 1, `pixel ${v} outside [0, 1]`);
}

Deno.test("LDMTextToImagePipeline.generate() runs every scheduler: right shape, no NaN, same seed → same image", async (t) => {
  const { pipe } = makePipeline();
  for (const scheduler of SCHEDULER_NAME_LIST) {
    await t.step(scheduler, async () => {
      const opts = { prompt: "a red circle", scheduler, numInferenceSteps: 4, guidanceScale: 3, seed: 7 };
      const a = await pipe.generate(opts);
      const b = await pipe.generate(opts);
      assertImages(a.images, [1, 32, 32, 3]);
      assert.equal(maxAbsDiff(a.images, b.images), 0);
      assert.equal(a.seed, 7);
      assert.ok(a.timings.steps >= 4);
      const other = await pipe.generate({ ...opts, seed: 8 });
      assert.ok(maxAbsDiff(a.images, other.images) > 0, "another seed gives another image");
    });
  }
  await t.step("eta > 0 with DDIM draws step noise from the seeded generator", async () => {
    const a = await pipe.generate({ prompt: "x", numInferenceSteps: 3, eta: 1, seed: 3 });
    const b = await pipe.generate({ prompt: "x", numInferenceSteps: 3, eta: 1, seed: 3 });
    const c = await pipe.generate({ prompt: "x", numInferenceSteps: 3, eta: 0, seed: 3 });
    assert.equal(maxAbsDiff(a.images, b.images), 0);
    assert.ok(maxAbsDiff(a.images, c.images) > 0);
  });
});

Deno.test("generate() draws latents as diffusers does: seed s equals latents = Generator(s).randn(shape)", async () => {
  const { pipe } = makePipeline();
  const seeded = await pipe.generate({ prompt: "p", seed: 11, numInferenceSteps: 3, guidanceScale: 2 });
  const latents = new Generator(11).randn([1, 4, 16, 16]);
  const explicit = await pipe.generate({ prompt: "p", latents, numInferenceSteps: 3, guidanceScale: 2 });
  assert.equal(maxAbsDiff(seeded.images, explicit.images), 0);
  // Without a seed one is drawn and reported, and reproduces the run.
  const drawn = await pipe.generate({ prompt: "p", numInferenceSteps: 3 });
  assert.ok(Number.isInteger(drawn.seed));
  const again = await pipe.generate({ prompt: "p", numInferenceSteps: 3, seed: drawn.seed! });
  assert.equal(maxAbsDiff(drawn.images, again.images), 0);
});

Deno.test("generate() runs the unconditional pass only with guidance > 1, on the negative prompt", async () => {
  const { pipe, unet, bert } = makePipeline();
  const base = { prompt: "a red circle", seed: 1, numInferenceSteps: 2 };
  const g1 = await pipe.generate({ ...base, guidanceScale: 1 });
  assert.deepEqual(unet.calls.map((c) => c.shapes["sample"]![0]), [1, 1]);
  assert.deepEqual(bert.calls.map((c) => c.shapes["input_ids"]), [[1, 77]]);
  const g1neg = await pipe.generate({ ...base, guidanceScale: 1, negativePrompt: "blue" });
  assert.equal(maxAbsDiff(g1.images, g1neg.images), 0, "negative prompt has no effect without guidance");
  unet.calls.length = 0;
  bert.calls.length = 0;
  const g5 = await pipe.generate({ ...base, guidanceScale: 5 });
  assert.deepEqual(unet.calls.map((c) => c.shapes["sample"]![0]), [2, 2], "CFG is one batch-2 call per step");
  assert.deepEqual(bert.calls.map((c) => c.shapes["input_ids"]), [[2, 77]]);
  const g5neg = await pipe.generate({ ...base, guidanceScale: 5, negativePrompt: "blue" });
  assert.ok(maxAbsDiff(g5.images, g5neg.images) > 1e-3, "the negative prompt replaces the empty prompt");
  const g5empty = await pipe.generate({ ...base, guidanceScale: 5, negativePrompt: "" });
  assert.equal(maxAbsDiff(g5.images, g5empty.images), 0);
  assert.ok(maxAbsDiff(g1.images, g5.images) > 1e-3);
});

Deno.test("generate() batches prompts × numImagesPerPrompt in diffusers' order", async () => {
  const { pipe, unet } = makePipeline();
  const r = await pipe.generate({
    prompt: ["a", "b"],
    negativePrompt: ["x", "y"],
    numImagesPerPrompt: 2,
    guidanceScale: 4,
    seed: 5,
    numInferenceSteps: 2,
  });
  assertImages(r.images, [4, 32, 32, 3]);
  assert.equal(unet.calls[0]!.shapes["sample"]![0], 8);
  // Images 0/1 share prompt "a" but not latents; with the same latents they would be equal.
  const latents = new Generator(5).randn([4, 4, 16, 16]);
  const same = new Tensor(latents.data.slice(0, 4 * 256 * 2), [2, 4, 16, 16]);
  same.data.set(latents.data.subarray(0, 4 * 256), 4 * 256);
  const twins = await pipe.generate({
    prompt: "a",
    negativePrompt: "x",
    numImagesPerPrompt: 2,
    latents: same,
    guidanceScale: 4,
    numInferenceSteps: 2,
  });
  const [i0, i1] = [0, 1].map((i) => new Tensor(twins.images.data.subarray(i * 3072, (i + 1) * 3072), [3072]));
  assert.equal(maxAbsDiff(i0!, i1!), 0);
  assert.equal(maxAbsDiff(i0!, new Tensor(r.images.data.subarray(0, 3072), [3072])), 0);
});

Deno.test("generateBatch() gives each item what generate() gives it alone, and drops aborted items", async () => {
  const { pipe, unet } = makePipeline();
  const shared = { guidanceScale: 3, numInferenceSteps: 4, scheduler: "euler-ancestral" as const };
  const solo1 = await pipe.generate({ prompt: "red", seed: 1, ...shared });
  const solo2 = await pipe.generate({
    prompt: "blue",
    negativePrompt: "green",
    seed: 2,
    numImagesPerPrompt: 2,
    ...shared,
  });
  unet.calls.length = 0;
  const gone = new AbortController();
  const batch = await pipe.generateBatch({
    items: [
      { prompt: "red", seed: 1 },
      { prompt: "blue", negativePrompt: "green", seed: 2, numImages: 2 },
      { prompt: "never", seed: 3, signal: gone.signal },
    ],
    onProgress: ({ step }) => {
      if (step === 2) gone.abort(new Error("client went away"));
    },
    ...shared,
  });
  assert.equal(batch.items.length, 3);
  const [a, b, c] = batch.items as [BatchItemResult, BatchItemResult, BatchItemResult];
  assert.ok(a.status === "done" && b.status === "done" && c.status === "aborted");
  assert.equal(maxAbsDiff(a.images, solo1.images), 0);
  assert.equal(maxAbsDiff(b.images, solo2.images), 0);
  assert.equal(a.seed, 1);
  assert.match(String((c as { reason: Error }).reason), /client went away/);
  // 4 images × 2 (CFG) for two steps, then 3 × 2 once the third item left.
  assert.deepEqual(unet.calls.map((x) => x.shapes["sample"]![0]), [8, 8, 6, 6]);
});

Deno.test("generate() stops between steps when its signal aborts and rejects with the reason", async () => {
  const { pipe, unet, vaeDecoder } = makePipeline();
  const ac = new AbortController();
  const progress: StepProgress[] = [];
  await assert.rejects(
    () =>
      pipe.generate({
        prompt: "p",
        numInferenceSteps: 10,
        signal: ac.signal,
        onProgress: (p) => {
          progress.push(p);
          if (p.step === 3) ac.abort();
        },
      }),
    { name: "AbortError" },
  );
  assert.equal(unet.calls.length, 3);
  assert.equal(vaeDecoder.calls.length, 0, "nothing decoded after the abort");
  const pre = new AbortController();
  pre.abort(new Error("already gone"));
  await assert.rejects(() => pipe.generate({ prompt: "p", signal: pre.signal }), /already gone/);
  assert.equal(unet.calls.length, 3);
});

Deno.test("generate() reports progress per step and previews every N steps", async () => {
  const { pipe } = makePipeline();
  const progress: StepProgress[] = [];
  const previews: { step: number; shape: readonly number[] }[] = [];
  await pipe.generate({
    prompt: ["p", "q"],
    numInferenceSteps: 6,
    seed: 0,
    onProgress: (p) => progress.push(p),
    previewEvery: 2,
    onPreview: (p) => void previews.push({ step: p.step, shape: p.images.shape }),
  });
  assert.deepEqual(progress.map((p) => p.step), [1, 2, 3, 4, 5, 6]);
  assert.ok(progress.every((p) => p.totalSteps === 6));
  assert.deepEqual(progress.map((p) => p.timestep), [830, 664, 498, 332, 166, 0]); // DDIM "leading", 1000 // 6
  assert.ok(progress.every((p, i) => i === 0 || p.elapsedMs >= progress[i - 1]!.elapsedMs));
  assert.deepEqual(previews, [{ step: 2, shape: [2, 32, 32, 3] }, { step: 4, shape: [2, 32, 32, 3] }]);
});

Deno.test("generate() and generateBatch() reject bad options with errors naming the option and value", async (t) => {
  const { pipe } = makePipeline();
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ["missing prompt", {}, /prompt must be a string or a non-empty array of strings/],
    ["empty prompt list", { prompt: [] }, /got an empty array/],
    ["prompt of wrong type", { prompt: 3 }, /prompt must be a string .*got number/],
    ["prompt list with a number", { prompt: ["a", 2] }, /prompt\[1\] must be a string: got 2/],
    ["steps 0", { prompt: "p", numInferenceSteps: 0 }, /numInferenceSteps must be an integer in \[1, 1000\]: got 0/],
    ["steps fractional", { prompt: "p", numInferenceSteps: 2.5 }, /got 2.5/],
    ["steps string", { prompt: "p", numInferenceSteps: "5" }, /numInferenceSteps must be an integer .*got "5"/],
    [
      "guidance NaN",
      { prompt: "p", guidanceScale: NaN },
      /guidanceScale must be a finite number in \[0, 100\]: got NaN/,
    ],
    ["guidance negative", { prompt: "p", guidanceScale: -1 }, /guidanceScale .* got -1/],
    ["eta 2", { prompt: "p", eta: 2 }, /eta must be a finite number in \[0, 1\]: got 2/],
    [
      "height not a multiple",
      { prompt: "p", height: 31 },
      /height must be a multiple of 2 \(the VAE scale factor\): got 31/,
    ],
    ["width too large", { prompt: "p", width: 4096 }, /width must be an integer in \[2, 1024\]: got 4096/],
    [
      "images per prompt 0",
      { prompt: "p", numImagesPerPrompt: 0 },
      /numImagesPerPrompt must be an integer in \[1, 64\]: got 0/,
    ],
    ["batch too large", { prompt: Array(10).fill("p"), numImagesPerPrompt: 7 }, /at most 64: got 70/],
    ["negatives count", { prompt: ["a", "b"], negativePrompt: ["x"] }, /one entry per prompt \(2\): got 1/],
    [
      "scheduler unknown",
      { prompt: "p", scheduler: "heun" },
      /scheduler must be one of ddim, pndm, lms, euler, euler-ancestral, dpm-multistep: got "heun"/,
    ],
    ["seed negative", { prompt: "p", seed: -1 }, /seed must be an integer in \[0, 2\^53\): got -1/],
    ["seed and generator", { prompt: "p", seed: 1, generator: new Generator(1) }, /mutually exclusive/],
    [
      "latents shape",
      { prompt: "p", latents: Tensor.zeros([1, 4, 8, 8]), height: 32 },
      /latents must have shape \[1, 4, 16, 8\]: got \[1, 4, 8, 8\]/,
    ],
    [
      "latents NaN",
      { prompt: "p", latents: new Tensor(new Float32Array(1024).fill(NaN), [1, 4, 16, 16]) },
      /latents must hold finite values/,
    ],
    ["unknown option", { prompt: "p", guidance: 5 }, /unknown option 'guidance'/],
    ["preview without callback", { prompt: "p", previewEvery: 2 }, /no onPreview callback/],
    ["signal not a signal", { prompt: "p", signal: {} }, /signal must be an AbortSignal/],
    ["scheduler config invalid", { prompt: "p", schedulerConfig: { beta_schedule: "cosine" } }, /beta_schedule/],
  ];
  for (const [name, opts, pattern] of cases) {
    await t.step(name, async () => {
      await assert.rejects(() => pipe.generate(opts as never), (e: Error) => {
        assert.ok(e instanceof TypeError || e instanceof RangeError, `${e.name}: ${e.message}`);
        assert.match(e.message, pattern);
        return true;
      });
    });
  }
  await t.step("batch items", async () => {
    await assert.rejects(() => pipe.generateBatch({ items: [] }), /items must be a non-empty array/);
    await assert.rejects(
      () => pipe.generateBatch({ items: [{ prompt: "a" }, { prompt: 1 as never }] }),
      /items\[1\]\.prompt must be a string: got 1/,
    );
    await assert.rejects(
      () => pipe.generateBatch({ items: [{ prompt: "a", seed: 1.5 }] }),
      /items\[0\]\.seed must be an integer/,
    );
    await assert.rejects(
      () => pipe.generateBatch({ items: [{ prompt: "a", numImages: 65 }] }),
      /items\[0\]\.numImages/,
    );
    await assert.rejects(
      () => pipe.generateBatch({ items: [{ prompt: "a", steps: 3 } as never] }),
      /items\[0\]: unknown option 'steps'/,
    );
  });
});

Deno.test("LDMTextToImagePipeline reads its configs, reports info, and refuses use after dispose()", async () => {
  const { pipe, bert, unet, vaeDecoder } = makePipeline();
  assert.deepEqual(pipe.info, {
    executionProviders: { bert: "fake", unet: "fake", vaeDecoder: "fake" },
    defaultWidth: 32,
    defaultHeight: 32,
    sizeMultiple: 2,
    vaeScaleFactor: 2,
    latentChannels: 4,
    schedulerClass: "DDIMScheduler",
  });
  const wide = await pipe.generate({ prompt: "p", width: 50, height: 18, numInferenceSteps: 1, seed: 0 });
  assert.deepEqual(wide.images.shape, [1, 18, 50, 3]);
  await pipe.dispose();
  assert.ok(bert.disposed && unet.disposed && vaeDecoder.disposed);
  await assert.rejects(() => pipe.generate({ prompt: "p" }), /used after dispose/);
  await pipe.dispose(); // idempotent
  const noInput = { ...fakeUNet(), inputs: fakeUNet().inputs.slice(0, 2) } as FakeModel;
  assert.throws(
    () => new LDMTextToImagePipeline({ bert, unet: noInput, vaeDecoder, tokenizer: fakeTokenizer, ...T2I_CONFIGS }),
    /unet graph has no input 'encoder_hidden_states'/,
  );
  assert.throws(
    () =>
      new LDMTextToImagePipeline({
        bert,
        unet,
        vaeDecoder,
        tokenizer: fakeTokenizer,
        ...T2I_CONFIGS,
        unetConfig: { sample_size: 16, block_out_channels: [32] },
      }),
    /unet\/config.json: in_channels must be a positive integer: got undefined/,
  );
});

Deno.test("generate() takes repeated prompts and the empty prompt from the text-embedding cache, bit for bit", async () => {
  const { pipe, bert } = makePipeline();
  const bareBert = fakeBert();
  const uncached = new LDMTextToImagePipeline({
    bert: bareBert,
    unet: fakeUNet(),
    vaeDecoder: fakeDecoder(2),
    tokenizer: fakeTokenizer,
    ...T2I_CONFIGS,
    textEmbeddingCache: false,
  });
  const base = { numInferenceSteps: 3, seed: 4, guidanceScale: 4 };
  const runs: [Record<string, unknown>, number[][], number][] = [
    [{ prompt: "red" }, [[2, 77]], 0], // red and "" in one call; "" pinned, red cached
    [{ prompt: "blue" }, [[1, 77]], 1], // only blue: "" comes from the cache
    [{ prompt: "red" }, [], 2], // encoder skipped
    [{ prompt: ["red", "blue"], numImagesPerPrompt: 2 }, [], 3],
    [{ prompt: "red", guidanceScale: 1 }, [], 1],
    [{ prompt: "red", negativePrompt: "blue" }, [], 2],
    [{ prompt: "green", negativePrompt: "red" }, [[2, 77]], 0], // a miss encodes every text of the run
  ];
  for (const [opts, calls, hits] of runs) {
    bert.calls.length = 0;
    const a = await pipe.generate({ ...base, ...opts } as never);
    const b = await uncached.generate({ ...base, ...opts } as never);
    assert.equal(maxAbsDiff(a.images, b.images), 0, JSON.stringify(opts));
    assert.deepEqual(bert.calls.map((c) => c.shapes["input_ids"]), calls, JSON.stringify(opts));
    assert.equal(a.timings.textCacheHits, hits, JSON.stringify(opts));
    assert.equal(b.timings.textCacheHits, 0);
    if (calls.length === 0) assert.equal(a.timings.textEncoderMs, 0);
  }
  assert.equal(bareBert.calls.length, runs.length, "without a cache every run calls the encoder");
  const stats = pipe.textEmbeddingCacheStats!;
  assert.deepEqual([stats.entries, stats.pinned, stats.hits, stats.misses], [3, [""], 9, 5]);
  assert.equal(uncached.textEmbeddingCacheStats, undefined);
  // generateBatch shares the cache: every text cached → no encoder call.
  bert.calls.length = 0;
  const batch = await pipe.generateBatch({
    items: [{ prompt: "red", seed: 1 }, { prompt: "blue", seed: 2 }],
    numInferenceSteps: 3,
    guidanceScale: 4,
  });
  assert.deepEqual(bert.calls, []);
  assert.equal(batch.timings.textCacheHits, 3);
});

Deno.test("the text-embedding cache evicts the least recently used prompt past its bounds", async () => {
  const bert = fakeBert();
  const make = (textEmbeddingCache: { maxEntries?: number; maxBytes?: number }) =>
    new LDMTextToImagePipeline({
      bert,
      unet: fakeUNet(),
      vaeDecoder: fakeDecoder(2),
      tokenizer: fakeTokenizer,
      ...T2I_CONFIGS,
      textEmbeddingCache,
    });
  const encoded = async (pipe: LDMTextToImagePipeline, prompt: string) => {
    bert.calls.length = 0;
    await pipe.generate({ prompt, numInferenceSteps: 1, seed: 0 });
    return bert.calls.length;
  };
  const one = make({ maxEntries: 1 });
  assert.deepEqual(
    [await encoded(one, "red"), await encoded(one, "red"), await encoded(one, "blue"), await encoded(one, "red")],
    [1, 0, 1, 1],
  );
  assert.deepEqual([one.textEmbeddingCacheStats!.entries, one.textEmbeddingCacheStats!.evictions], [1, 2]);
  // The fake encoder's rows are 77 × 8 float32 (2464 bytes): a bound of 3000 bytes holds one prompt.
  const bytes = make({ maxBytes: 3000 });
  assert.deepEqual([await encoded(bytes, "red"), await encoded(bytes, "blue"), await encoded(bytes, "red")], [1, 1, 1]);
  assert.ok(bytes.textEmbeddingCacheStats!.bytes <= 3000);
  assert.throws(() => make({ maxEntries: -1 }), /textEmbeddingCache.maxEntries must be an integer >= 0: got -1/);
  assert.throws(() => make({ size: 3 } as never), /textEmbeddingCache: unknown option 'size'/);
  assert.throws(() => make("big" as never), /textEmbeddingCache must be false or \{ maxEntries\?, maxBytes\? \}/);
});

Deno.test("the loop builds the UNet's text states and buffers once per run, again only when an item leaves", async () => {
  const unet = fakeUNet();
  const feeds: Record<string, unknown>[] = [];
  const run = unet.run;
  unet.run = (f) => {
    feeds.push({ ...f });
    return run(f);
  };
  const pipe = new LDMTextToImagePipeline({
    bert: fakeBert(),
    unet,
    vaeDecoder: fakeDecoder(2),
    tokenizer: fakeTokenizer,
    ...T2I_CONFIGS,
  });
  const same = (key: string, from: number, to: number) =>
    feeds.slice(from, to).every((f) => f[key] === feeds[from]![key]);
  await pipe.generate({ prompt: "p", guidanceScale: 3, numInferenceSteps: 4, seed: 0, scheduler: "lms" });
  assert.equal(feeds.length, 4);
  for (const key of ["sample", "timestep", "encoder_hidden_states"]) assert.ok(same(key, 0, 4), key);
  feeds.length = 0;
  const gone = new AbortController();
  await pipe.generateBatch({
    items: [{ prompt: "a", seed: 1 }, { prompt: "b", seed: 2, signal: gone.signal }],
    guidanceScale: 3,
    numInferenceSteps: 4,
    onProgress: ({ step }) => step === 2 && gone.abort(),
  });
  assert.deepEqual(unet.calls.slice(-4).map((c) => c.shapes["encoder_hidden_states"]![0]), [4, 4, 2, 2]);
  for (const key of ["sample", "timestep", "encoder_hidden_states"]) {
    assert.ok(same(key, 0, 2) && same(key, 2, 4), key);
    assert.notEqual(feeds[1]![key], feeds[2]![key], `${key} rebuilt when the item left`);
  }
});

Deno.test("previews: the loop goes on while onPreview's promise is pending, skips previews until it settles", async () => {
  const { pipe, unet, vaeDecoder } = makePipeline();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const delivered: number[] = [];
  let unetCallsAtRelease = 0;
  let lastSettled = false;
  const r = await pipe.generate({
    prompt: "p",
    numInferenceSteps: 8,
    seed: 0,
    previewEvery: 1,
    onPreview: ({ step }) => {
      delivered.push(step);
      if (step === 1) return gate;
      if (step === 7) return new Promise<void>((resolve) => setTimeout(() => resolve(void (lastSettled = true)), 20));
    },
    onProgress: ({ step }) => {
      if (step === 3) {
        unetCallsAtRelease = unet.calls.length;
        release();
      }
    },
  });
  assert.equal(unetCallsAtRelease, 3, "steps 2 and 3 ran while the first preview was pending");
  assert.equal(delivered[0], 1);
  assert.ok(!delivered.includes(2) && !delivered.includes(3), `skipped while pending: ${delivered}`);
  assert.equal(delivered.at(-1), 7);
  assert.ok(lastSettled, "the run resolves after the last pending preview settled");
  assert.equal(vaeDecoder.calls.length, delivered.length + 1, "skipped previews are not decoded");
  assert.ok(r.timings.previewMs >= 0 && r.timings.decodeMs >= 0);

  const calls = unet.calls.length;
  await assert.rejects(
    () =>
      pipe.generate({
        prompt: "p",
        numInferenceSteps: 8,
        seed: 0,
        previewEvery: 2,
        onPreview: () => Promise.reject(new Error("consumer failed")),
      }),
    /consumer failed/,
  );
  assert.ok(unet.calls.length - calls < 8, "a rejected preview stops the run");
  await assert.rejects(
    () =>
      pipe.generate({
        prompt: "p",
        numInferenceSteps: 4,
        previewEvery: 2,
        onPreview: () => {
          throw new Error("sync failure");
        },
      }),
    /sync failure/,
  );
});

Deno.test("with the built-in model, cached text embeddings give the images encoding gives, bit for bit", async () => {
  const dir = new URL("../../models/builtin/ldm-text2im-tiny", import.meta.url).pathname;
  await using cached = await LDMTextToImagePipeline.load(dir);
  await using uncached = await LDMTextToImagePipeline.load(dir, { textEmbeddingCache: false });
  const p = "a big red circle on a blue background", q = "a small green square on a white background";
  const runs = [{ prompt: p }, { prompt: q }, { prompt: p }, { prompt: [q, p] }, { prompt: p, negativePrompt: q }];
  const hits: number[] = [];
  for (const run of runs) {
    const opts = { ...run, guidanceScale: 5, numInferenceSteps: 3, seed: 1 };
    const a = await cached.generate(opts);
    const b = await uncached.generate(opts);
    assert.equal(maxAbsDiff(a.images, b.images), 0, JSON.stringify(run));
    hits.push(a.timings.textCacheHits);
  }
  assert.deepEqual(hits, [0, 1, 2, 3, 2]);
});
