import assert from "node:assert/strict";
import { join } from "node:path";
import { openWeights } from "./weights.ts";
import { type SafetensorsTensor, writeSafetensors } from "./safetensors.ts";
import type { DType } from "./types.ts";

const UNET = new URL(
  "../../tests/fixtures/diffusers-tiny/ldm-text2im/unet/diffusion_pytorch_model.safetensors",
  import.meta.url,
).pathname;

/** Splits the tiny UNet into two safetensors shards plus a diffusers-style index; returns the index path. */
async function shardTinyUnet(dir: string): Promise<string> {
  const src = await openWeights(UNET);
  try {
    const names = src.names();
    const half = Math.ceil(names.length / 2);
    const weightMap: Record<string, string> = {};
    const shards = [names.slice(0, half), names.slice(half)];
    for (const [i, shard] of shards.entries()) {
      const file = `diffusion_pytorch_model-0000${i + 1}-of-00002.safetensors`;
      const tensors: SafetensorsTensor[] = [];
      for (const name of shard) {
        const { dtype, shape } = src.info(name);
        tensors.push({ name, dtype: dtype as DType, shape, data: await src.readRaw(name) });
        weightMap[name] = file;
      }
      await writeSafetensors(join(dir, file), tensors, { metadata: { format: "pt" } });
    }
    const index = join(dir, "diffusion_pytorch_model.safetensors.index.json");
    await Deno.writeTextFile(index, JSON.stringify({ metadata: { total_size: 1 }, weight_map: weightMap }));
    return index;
  } finally {
    src.close();
  }
}

Deno.test("openWeights() reads a sharded checkpoint through its index exactly like the single file", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const index = await shardTinyUnet(dir);
    const whole = await openWeights(UNET);
    const sharded = await openWeights(index);
    try {
      assert.equal(sharded.files.length, 2);
      assert.deepEqual([...sharded.names()].sort(), [...whole.names()].sort());
      for (const name of whole.names()) {
        assert.deepEqual(sharded.info(name), whole.info(name));
        assert.deepEqual(await sharded.readFloat32(name), await whole.readFloat32(name), name);
      }
      const last = whole.names().at(-1)!;
      assert.match(sharded.fileOf(last), /00002-of-00002/);
    } finally {
      whole.close();
      sharded.close();
    }

    await t.step("several files merged, duplicates refused", async () => {
      const shards = [1, 2].map((i) => join(dir, `diffusion_pytorch_model-0000${i}-of-00002.safetensors`));
      const merged = await openWeights(shards);
      assert.equal(merged.names().length, 304);
      merged.close();
      await assert.rejects(() => openWeights([shards[0]!, shards[0]!]), /appears twice/);
      await assert.rejects(() => openWeights([]), /at least one file/);
    });

    await t.step("an index that places a tensor in the wrong shard", async () => {
      const raw = JSON.parse(await Deno.readTextFile(index));
      const name = Object.keys(raw.weight_map)[0]!;
      raw.weight_map[name] = "diffusion_pytorch_model-00002-of-00002.safetensors";
      const bad = join(dir, "bad.safetensors.index.json");
      await Deno.writeTextFile(bad, JSON.stringify(raw));
      await assert.rejects(
        () => openWeights(bad),
        new RegExp(`'${name.replaceAll(".", "\\.")}' in .*00002-of-00002.*does not hold it`),
      );
    });

    await t.step("an index naming a missing shard or escaping its folder", async () => {
      const bad = join(dir, "missing.safetensors.index.json");
      await Deno.writeTextFile(bad, JSON.stringify({ weight_map: { a: "gone.safetensors" } }));
      await assert.rejects(
        () => openWeights(bad),
        (e) => e instanceof Deno.errors.NotFound && /gone\.safetensors/.test(e.message),
      );
      await Deno.writeTextFile(bad, JSON.stringify({ weight_map: { a: "../../etc/passwd" } }));
      await assert.rejects(() => openWeights(bad), /weight_map\['a'\] must be a file name beside the index/);
      await Deno.writeTextFile(bad, JSON.stringify({ nothing: 1 }));
      await assert.rejects(() => openWeights(bad), /weight_map must be an object/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
