/**
 * The text-embedding cache of a text-to-image pipeline: LDMBert outputs by prompt text, so that a repeated prompt
 * skips the text encoder.
 *
 * Two parts:
 * - **pinned** texts (the pipeline pins `""`, the unconditional text every guided run without a negative prompt
 *   needs): kept for the pipeline's lifetime once encoded, outside the bounds below;
 * - a **least-recently-used** map of other texts, bounded by a number of entries and by bytes (the embedding's
 *   float32 data plus the key's UTF-16 code units); inserting past a bound evicts the least recently used entries,
 *   and an entry larger than the byte bound on its own is not stored.
 *
 * Entries are copies (`[1, L, D]`), never views of an encoder output, so an entry holds exactly its own bytes, and
 * callers must not write into what {@linkcode TextEmbeddingCache.get} returns.
 *
 * Why a hit equals the uncached result bit for bit: LDMBert (no attention mask) has no operation that mixes batch
 * rows, so row i of an encoder call depends only on text i, whatever else is in the batch. Checked on
 * onnxruntime's CPU provider for the built-in model and the diffusers fixture (1, 2 and 6 texts per call: identical
 * rows); a GPU provider that picks another GEMM kernel for another batch size could differ in the last bits, as
 * batched runs already may.
 *
 * @module
 */
import type { Tensor } from "../tensor/mod.ts";

/** Bounds of the prompt-embedding LRU of `LDMTextToImagePipeline` (the pinned `""` is outside them). */
export interface TextEmbeddingCacheOptions {
  /**
   * Most prompts kept. 0 keeps none (only the pinned unconditional `""`).
   * @default 32
   */
  maxEntries?: number;
  /**
   * Most bytes kept: float32 data (77 × hidden size × 4: 394 KB per prompt for CompVis' LDMBert, 39 KB for the
   * built-in model) plus 2 bytes per key character.
   * @default 16 MiB
   */
  maxBytes?: number;
}

/** Default {@linkcode TextEmbeddingCacheOptions.maxEntries}. */
export const DEFAULT_TEXT_CACHE_ENTRIES = 32;
/** Default {@linkcode TextEmbeddingCacheOptions.maxBytes}. */
export const DEFAULT_TEXT_CACHE_BYTES = 16 * 1024 * 1024;

/** Counters and sizes of a {@linkcode TextEmbeddingCache}. */
export interface TextEmbeddingCacheStats {
  /** Prompts in the LRU (pinned texts excluded). */
  entries: number;
  /** Bytes the LRU holds (pinned texts excluded). */
  bytes: number;
  /** Pinned texts encoded so far (e.g. `[""]` once a guided run has encoded it). */
  pinned: string[];
  /** Lookups answered from the cache (pinned or LRU). */
  hits: number;
  /** Lookups not answered. */
  misses: number;
  /** LRU entries evicted to stay within the bounds. */
  evictions: number;
  /** The entry bound. */
  maxEntries: number;
  /** The byte bound. */
  maxBytes: number;
}

/** Bytes an entry counts for: its float32 data plus two per key character. */
export function entryBytes(text: string, embedding: Tensor): number {
  return embedding.data.byteLength + 2 * text.length;
}

/** See the module documentation. */
export class TextEmbeddingCache {
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #pinnedTexts: ReadonlySet<string>;
  readonly #pinned = new Map<string, Tensor>();
  /** Insertion order = recency order: the first key is the least recently used. */
  readonly #lru = new Map<string, Tensor>();
  #bytes = 0;
  #hits = 0;
  #misses = 0;
  #evictions = 0;

  /**
   * @param options the LRU's bounds.
   * @param pinned texts kept outside the bounds once stored.
   * @throws {RangeError} when a bound is not an integer ≥ 0.
   */
  constructor(options: TextEmbeddingCacheOptions = {}, pinned: readonly string[] = []) {
    this.#maxEntries = bound("textEmbeddingCache.maxEntries", options.maxEntries, DEFAULT_TEXT_CACHE_ENTRIES);
    this.#maxBytes = bound("textEmbeddingCache.maxBytes", options.maxBytes, DEFAULT_TEXT_CACHE_BYTES);
    this.#pinnedTexts = new Set(pinned);
  }

  /** Whether `text` is pinned (kept outside the LRU's bounds). */
  isPinned(text: string): boolean {
    return this.#pinnedTexts.has(text);
  }

  /** Whether `text` is stored, without counting a lookup or touching its recency. */
  has(text: string): boolean {
    return this.#pinned.has(text) || this.#lru.has(text);
  }

  /** The stored embedding of `text` (marked most recently used), or `undefined`; counts a hit or a miss. */
  get(text: string): Tensor | undefined {
    const pinned = this.#pinned.get(text);
    if (pinned !== undefined) {
      this.#hits++;
      return pinned;
    }
    const t = this.#lru.get(text);
    if (t === undefined) {
      this.#misses++;
      return undefined;
    }
    this.#lru.delete(text);
    this.#lru.set(text, t);
    this.#hits++;
    return t;
  }

  /**
   * Splits the distinct texts of one run into embeddings served from the cache and texts to encode. Either every text
   * is cached (nothing to encode), or one encoder call covers every text except cached pinned ones: LRU entries are
   * then encoded again rather than split off, so a run that calls the encoder makes the call an uncached pipeline
   * would, minus the pinned rows. Counts a hit per served text and a miss per text to encode.
   */
  lookup(texts: readonly string[]): { cached: Map<string, Tensor>; encode: string[] } {
    const all = texts.every((t) => this.has(t));
    const encode = all ? [] : texts.filter((t) => !this.#pinned.has(t));
    const cached = new Map<string, Tensor>();
    for (const t of texts) {
      if (!all && !this.#pinned.has(t)) continue;
      cached.set(t, this.get(t)!);
    }
    this.#misses += encode.length;
    return { cached, encode };
  }

  /**
   * Stores `embedding` (taken over: pass a copy) for `text`: pinned texts in the pinned map, others in the LRU as the
   * most recently used entry, evicting least recently used ones past a bound.
   */
  set(text: string, embedding: Tensor): void {
    if (this.#pinnedTexts.has(text)) {
      this.#pinned.set(text, embedding);
      return;
    }
    const old = this.#lru.get(text);
    if (old !== undefined) {
      this.#lru.delete(text);
      this.#bytes -= entryBytes(text, old);
    }
    const size = entryBytes(text, embedding);
    if (this.#maxEntries === 0 || size > this.#maxBytes) return;
    this.#lru.set(text, embedding);
    this.#bytes += size;
    for (const [key, value] of this.#lru) {
      if (this.#lru.size <= this.#maxEntries && this.#bytes <= this.#maxBytes) break;
      this.#lru.delete(key);
      this.#bytes -= entryBytes(key, value);
      this.#evictions++;
    }
  }

  /** Drops every entry, pinned ones included (counters are kept). */
  clear(): void {
    this.#pinned.clear();
    this.#lru.clear();
    this.#bytes = 0;
  }

  /** Current sizes and counters. */
  stats(): TextEmbeddingCacheStats {
    return {
      entries: this.#lru.size,
      bytes: this.#bytes,
      pinned: [...this.#pinned.keys()],
      hits: this.#hits,
      misses: this.#misses,
      evictions: this.#evictions,
      maxEntries: this.#maxEntries,
      maxBytes: this.#maxBytes,
    };
  }
}

function bound(name: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number") throw new TypeError(`${name} must be an integer >= 0: got ${JSON.stringify(v)}`);
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${name} must be an integer >= 0: got ${v}`);
  return v;
}
