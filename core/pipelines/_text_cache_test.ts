import assert from "node:assert/strict";
import { Tensor } from "../tensor/mod.ts";
import { entryBytes, TextEmbeddingCache } from "./_text_cache.ts";

/** A `[1, 77, dim]` embedding whose values identify `salt`. */
function emb(salt: number, dim = 4): Tensor {
  return new Tensor(Float32Array.from({ length: 77 * dim }, (_, i) => salt + i / 1000), [1, 77, dim]);
}

Deno.test("TextEmbeddingCache.get() counts hits and misses and returns what set() stored", () => {
  const cache = new TextEmbeddingCache();
  const a = emb(1);
  assert.equal(cache.get("a"), undefined);
  cache.set("a", a);
  assert.equal(cache.get("a"), a);
  assert.equal(cache.get("b"), undefined);
  const s = cache.stats();
  assert.deepEqual([s.hits, s.misses, s.entries, s.bytes], [1, 2, 1, entryBytes("a", a)]);
  assert.equal(entryBytes("abc", a), 77 * 4 * 4 + 6);
  assert.deepEqual([s.maxEntries, s.maxBytes], [32, 16 * 1024 * 1024]);
});

Deno.test("TextEmbeddingCache evicts the least recently used entries past maxEntries", () => {
  const cache = new TextEmbeddingCache({ maxEntries: 2 });
  cache.set("a", emb(1));
  cache.set("b", emb(2));
  assert.ok(cache.get("a") !== undefined, "a is now the most recently used");
  cache.set("c", emb(3)); // evicts b, not a
  assert.ok(cache.has("a") && !cache.has("b") && cache.has("c"));
  cache.set("d", emb(4)); // evicts a (c was stored after a's last use)
  assert.ok(!cache.has("a") && cache.has("c") && cache.has("d"));
  const s = cache.stats();
  assert.deepEqual([s.entries, s.evictions], [2, 2]);
  assert.equal(s.bytes, entryBytes("c", emb(3)) + entryBytes("d", emb(4)));
});

Deno.test("TextEmbeddingCache stays within maxBytes and does not store an entry larger than the bound", () => {
  const one = entryBytes("a", emb(1));
  const cache = new TextEmbeddingCache({ maxEntries: 100, maxBytes: 2 * one + 1 });
  cache.set("a", emb(1));
  cache.set("b", emb(2));
  cache.set("c", emb(3));
  assert.deepEqual([cache.has("a"), cache.has("b"), cache.has("c")], [false, true, true]);
  assert.ok(cache.stats().bytes <= 2 * one + 1);
  const wide = new TextEmbeddingCache({ maxBytes: one - 1 });
  wide.set("a", emb(1));
  assert.deepEqual([wide.has("a"), wide.stats().bytes, wide.stats().evictions], [false, 0, 0]);
  // Replacing an entry replaces its bytes.
  cache.set("c", emb(5, 2));
  assert.equal(cache.stats().bytes, entryBytes("b", emb(2)) + entryBytes("c", emb(5, 2)));
});

Deno.test("TextEmbeddingCache keeps pinned texts outside the bounds, and maxEntries 0 keeps only those", () => {
  const cache = new TextEmbeddingCache({ maxEntries: 0 }, [""]);
  const u = emb(0);
  cache.set("", u);
  cache.set("a", emb(1));
  assert.ok(cache.isPinned("") && !cache.isPinned("a"));
  assert.equal(cache.get(""), u);
  assert.equal(cache.get("a"), undefined);
  const s = cache.stats();
  assert.deepEqual([s.entries, s.bytes, s.pinned], [0, 0, [""]]);
  const small = new TextEmbeddingCache({ maxEntries: 1 }, [""]);
  small.set("", u);
  for (const t of ["a", "b", "c"]) small.set(t, emb(1));
  assert.equal(small.get(""), u, "pinned entries are never evicted");
  small.clear();
  assert.ok(!small.has("") && small.stats().entries === 0);
});

Deno.test("TextEmbeddingCache.lookup() serves a run from the cache only when every text is cached", () => {
  const cache = new TextEmbeddingCache({}, [""]);
  assert.deepEqual(cache.lookup(["p", ""]).encode, ["p", ""], "cold: everything is encoded");
  cache.set("p", emb(1));
  cache.set("", emb(0));
  const hit = cache.lookup(["p", ""]);
  assert.deepEqual([hit.encode, [...hit.cached.keys()]], [[], ["p", ""]]);
  // A miss: one call on every text except the cached pinned "" (p is encoded again, not split off).
  const partial = cache.lookup(["p", "q", ""]);
  assert.deepEqual([partial.encode, [...partial.cached.keys()]], [["p", "q"], [""]]);
  const s = cache.stats();
  assert.deepEqual([s.hits, s.misses], [3, 4]);
});

Deno.test("TextEmbeddingCache rejects bad bounds naming the option and value", () => {
  assert.throws(() => new TextEmbeddingCache({ maxEntries: -1 }), {
    name: "RangeError",
    message: "textEmbeddingCache.maxEntries must be an integer >= 0: got -1",
  });
  assert.throws(() => new TextEmbeddingCache({ maxBytes: 1.5 }), /maxBytes must be an integer >= 0: got 1.5/);
  assert.throws(
    () => new TextEmbeddingCache({ maxBytes: "1" as unknown as number }),
    { name: "TypeError", message: 'textEmbeddingCache.maxBytes must be an integer >= 0: got "1"' },
  );
});
