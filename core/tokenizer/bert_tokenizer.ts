/**
 * `BertTokenizer`: BERT's uncased WordPiece tokenizer as Hugging Face runs it for LDMBert, producing the
 * `[CLS] … [SEP] [PAD]…` ids that `LDMTextToImagePipeline` feeds its text encoder (padding="max_length",
 * max_length=77, truncation=True; diffusers `pipeline_latent_diffusion.py`).
 *
 * Two faithful variants, because Hugging Face ships two implementations that differ on a few rare characters:
 * - `"slow"`: transformers' Python `BertTokenizer` (`BasicTokenizer` + `WordpieceTokenizer` in
 *   `models/bert/tokenization_bert.py`, special tokens split by `PreTrainedTokenizer.tokenize`'s trie);
 * - `"fast"`: the Rust `tokenizers` pipeline a `tokenizer.json` describes (`BertNormalizer`, `BertPreTokenizer`,
 *   `WordPiece`, `AddedVocabulary`), which transformers ≥ 5 uses for `BertTokenizer` too.
 * They differ only on the CJK range U+2B820–U+2B91F (split by slow only), NFC composition (slow only: matters when
 * accents are kept) and final sigma (slow lower-cases per word, so a word-final Σ becomes ς; fast per character).
 *
 * @module
 */
import {
  isChineseCharFast,
  isChineseCharSlow,
  isControl,
  isPunctuation,
  isWhitespaceFast,
  isWhitespaceSlow,
  PYTHON_WHITESPACE_RUN,
  RUST_WHITESPACE_RUN,
  RUST_WORD_CHAR,
  stripAccents,
} from "./_unicode.ts";
import {
  checkId,
  describe,
  isRecord,
  optBool,
  optionsFromConfig,
  postProcessorIds,
  validateAddedTokens,
} from "./_parse.ts";

/** The sequence length `LDMTextToImagePipeline` pads and truncates every prompt to. */
export const DEFAULT_MAX_LENGTH = 77;

/** Which Hugging Face implementation to reproduce; see the module documentation for the differences. */
export type BertTokenizerFlavor = "slow" | "fast";

/**
 * A token matched in the raw text before any normalisation (transformers' `AddedToken`): the special tokens, plus any
 * token a `tokenizer.json` or `tokenizer_config.json` adds. It always maps to `id` and is never split.
 */
export interface AddedTokenSpec {
  /** The exact text to match. */
  readonly content: string;
  /** Its id. */
  readonly id: number;
  /** Match only when not inside a word. @default false */
  readonly singleWord?: boolean;
  /**
   * Fast flavor only: match in the normalised text (after lower-casing etc.) instead of the raw text.
   * @default false
   */
  readonly normalized?: boolean;
}

/** Options of {@linkcode BertTokenizer.fromVocab}; defaults are transformers' `BertTokenizer.__init__` defaults. */
export interface BertTokenizerOptions {
  /** Lower-case the text. @default true */
  doLowerCase?: boolean;
  /** Strip accents (NFD, drop Mn). `null`/`undefined` follows `doLowerCase`, as in the original BERT. @default null */
  stripAccents?: boolean | null;
  /** Put spaces around CJK ideographs so each is a token. @default true */
  tokenizeChineseChars?: boolean;
  /** Slow flavor only: run the basic tokenizer (cleaning, lower-casing, punctuation split) before WordPiece. @default true */
  doBasicTokenize?: boolean;
  /** Slow flavor only: words the basic tokenizer keeps as they are (transformers' `never_split`). @default [] */
  neverSplit?: readonly string[];
  /** @default "[UNK]" */
  unkToken?: string;
  /** @default "[SEP]" */
  sepToken?: string;
  /** @default "[PAD]" */
  padToken?: string;
  /** @default "[CLS]" */
  clsToken?: string;
  /** Split out of the text as a special token when the vocabulary has it. @default "[MASK]" */
  maskToken?: string;
  /** Further tokens matched in the raw text (e.g. `added_tokens_decoder` of a `tokenizer_config.json`). @default [] */
  addedTokens?: readonly AddedTokenSpec[];
  /** Words longer than this many code points become `[UNK]`. @default 100 */
  maxInputCharsPerWord?: number;
  /** Which implementation to reproduce. @default "slow" */
  flavor?: BertTokenizerFlavor;
}

/** Options of {@linkcode BertTokenizer.encode} and {@linkcode BertTokenizer.encodeBatch}. */
export interface EncodeOptions {
  /**
   * Length of the result, `[CLS]` and `[SEP]` included: longer texts keep their first `maxLength - 2` tokens,
   * shorter ones are padded with `[PAD]`. An integer ≥ 2.
   * @default 77
   */
  maxLength?: number;
}

/** A batch of ids, row-major `[batch, maxLength]`, in the shape an int64 ONNX feed takes (`Int64Feed`). */
export interface EncodedBatch {
  /** The ids, `batch * maxLength` of them. */
  readonly int64: BigInt64Array;
  /** `[batch, maxLength]`. */
  readonly shape: readonly [number, number];
}

/** Everything the tokenizer runs on, resolved from either source. */
interface Resolved {
  flavor: BertTokenizerFlavor;
  vocab: Map<string, number>;
  unkToken: string;
  unkId: number | undefined;
  clsId: number;
  sepId: number;
  padId: number;
  prefix: string;
  maxInputCharsPerWord: number;
  added: AddedTokenSpec[];
  // Normalisation. For the slow flavor `basic` says whether BasicTokenizer runs at all; for the fast flavor whether a
  // BertNormalizer is present.
  basic: boolean;
  cleanText: boolean;
  chinese: boolean;
  lowercase: boolean;
  strip: boolean;
  preTokenize: boolean;
  neverSplit: Set<string>;
  basicNeverSplit: Set<string>;
}

interface Piece {
  text: string;
  added: AddedTokenSpec | null;
}

/** Leftmost-longest, non-overlapping matches of `tokens` in `text` (HF's added-token trie and Aho–Corasick). */
function splitOnTokens(
  text: string,
  tokens: readonly AddedTokenSpec[],
  accept: (text: string, start: number, end: number, token: AddedTokenSpec) => boolean,
): Piece[] {
  if (tokens.length === 0 || text.length === 0) return [{ text, added: null }];
  const pieces: Piece[] = [];
  let last = 0;
  let pos = 0;
  while (pos < text.length) {
    let best: AddedTokenSpec | null = null;
    for (const t of tokens) {
      if ((best === null || t.content.length > best.content.length) && text.startsWith(t.content, pos)) best = t;
    }
    if (best === null) {
      pos++;
      continue;
    }
    const end = pos + best.content.length;
    if (accept(text, pos, end, best)) {
      if (pos > last) pieces.push({ text: text.slice(last, pos), added: null });
      pieces.push({ text: best.content, added: best });
      last = end;
    }
    pos = end; // a rejected match is skipped as a whole, as a leftmost match iterator does
  }
  if (last < text.length) pieces.push({ text: text.slice(last), added: null });
  return pieces;
}

/**
 * BERT WordPiece tokenizer, faithful to transformers' `BertTokenizer` (flavor `"slow"`) or to a `tokenizer.json`
 * run by Hugging Face `tokenizers` (flavor `"fast"`). Immutable after construction; safe to share.
 *
 * @example Encode a prompt for LDMBert
 * ```ts
 * import { BertTokenizer } from "@ldm/core/tokenizer";
 * const tokenizer = BertTokenizer.fromVocab("[PAD]\n[UNK]\n[CLS]\n[SEP]\na\ncat\n");
 * console.log(tokenizer.tokenize("A cat!")); // ["a", "cat", "[UNK]"]
 * console.log(tokenizer.encode("A cat", { maxLength: 6 })); // [2, 4, 5, 3, 0, 0]
 * ```
 */
export class BertTokenizer {
  readonly #r: Resolved;

  private constructor(resolved: Resolved) {
    this.#r = resolved;
  }

  /**
   * A tokenizer from the text of a BERT `vocab.txt` (one token per line; the line number is the id; when a token is
   * listed twice the later line wins, as transformers' `load_vocab` does; `\r\n` and `\r` end lines as in Python's
   * text mode).
   *
   * @param vocabTxt the file's text.
   * @param options transformers' `BertTokenizer` arguments; see {@linkcode BertTokenizerOptions}.
   * @throws {TypeError} when `vocabTxt` is not a string, an option has the wrong type, or the vocabulary lacks the
   *   `[UNK]`, `[CLS]`, `[SEP]` or `[PAD]` token.
   */
  static fromVocab(vocabTxt: string, options: BertTokenizerOptions = {}): BertTokenizer {
    if (typeof vocabTxt !== "string") throw new TypeError(`vocabTxt must be a string: got ${describe(vocabTxt)}`);
    if (!isRecord(options)) throw new TypeError(`options must be an object: got ${describe(options)}`);
    const lines = vocabTxt.replace(/\r\n?/g, "\n").split("\n");
    if (lines.at(-1) === "") lines.pop(); // readlines() yields no empty last line after a final newline
    const vocab = new Map<string, number>();
    lines.forEach((token, index) => vocab.set(token, index));
    if (vocab.size === 0) throw new TypeError("vocabTxt must list at least one token: got an empty vocabulary");

    const o = options as Record<string, unknown>;
    const str = (key: string, fallback: string): string => {
      const v = o[key];
      if (v === undefined) return fallback;
      if (typeof v !== "string" || v === "") {
        throw new TypeError(`options.${key} must be a non-empty string: got ${describe(v)}`);
      }
      return v;
    };
    const flavor = o.flavor ?? "slow";
    if (flavor !== "slow" && flavor !== "fast") {
      throw new TypeError(`options.flavor must be "slow" or "fast": got ${describe(flavor)}`);
    }
    const doLowerCase = optBool(o, "doLowerCase", "options", true);
    const sa = o.stripAccents;
    if (sa !== undefined && sa !== null && typeof sa !== "boolean") {
      throw new TypeError(`options.stripAccents must be a boolean or null: got ${describe(sa)}`);
    }
    const maxChars = o.maxInputCharsPerWord ?? 100;
    if (typeof maxChars !== "number" || !Number.isInteger(maxChars) || maxChars < 1) {
      throw new TypeError(`options.maxInputCharsPerWord must be a positive integer: got ${describe(maxChars)}`);
    }
    const neverSplit = o.neverSplit ?? [];
    if (!Array.isArray(neverSplit) || neverSplit.some((t) => typeof t !== "string")) {
      throw new TypeError(`options.neverSplit must be an array of strings: got ${describe(neverSplit)}`);
    }

    const specials = {
      unk: str("unkToken", "[UNK]"),
      sep: str("sepToken", "[SEP]"),
      pad: str("padToken", "[PAD]"),
      cls: str("clsToken", "[CLS]"),
      mask: str("maskToken", "[MASK]"),
    };
    const need = (token: string, key: string): number => {
      const id = vocab.get(token);
      if (id === undefined) throw new TypeError(`the vocabulary has no ${key} ${JSON.stringify(token)}`);
      return id;
    };
    const unkId = need(specials.unk, "unkToken");
    const clsId = need(specials.cls, "clsToken");
    const sepId = need(specials.sep, "sepToken");
    const padId = need(specials.pad, "padToken");

    // transformers registers the special tokens as added tokens (normalized=false) with their vocabulary ids.
    const added: AddedTokenSpec[] = [];
    for (const token of [specials.pad, specials.unk, specials.cls, specials.sep, specials.mask]) {
      const id = vocab.get(token);
      if (id !== undefined && !added.some((a) => a.content === token)) added.push({ content: token, id });
    }
    for (const a of validateAddedTokens(o.addedTokens ?? [], "options.addedTokens")) {
      if (!added.some((b) => b.content === a.content)) added.push(a);
    }

    const tokenizeChineseChars = optBool(o, "tokenizeChineseChars", "options", true);
    const specialSet = new Set(Object.values(specials));
    return new BertTokenizer({
      flavor,
      vocab,
      unkToken: specials.unk,
      unkId,
      clsId,
      sepId,
      padId,
      prefix: "##",
      maxInputCharsPerWord: maxChars,
      added,
      basic: flavor === "fast" ? true : optBool(o, "doBasicTokenize", "options", true),
      cleanText: true,
      chinese: tokenizeChineseChars,
      lowercase: doLowerCase,
      strip: typeof sa === "boolean" ? sa : doLowerCase,
      preTokenize: true,
      neverSplit: new Set(flavor === "slow" ? neverSplit as string[] : []),
      basicNeverSplit: new Set(flavor === "slow" ? [...neverSplit as string[], ...specialSet] : []),
    });
  }

  /**
   * A tokenizer from a Hugging Face `tokenizer.json` (already parsed) whose model is `WordPiece`, normalizer
   * `BertNormalizer` (or none), pre-tokenizer `BertPreTokenizer` (or none) and post-processor `TemplateProcessing`
   * `[CLS] $A [SEP]` or `BertProcessing`. Runs the fast flavor: exactly what `tokenizers` does with that file.
   *
   * @param json the parsed file.
   * @throws {TypeError} naming the field when the file has another shape or uses a component not listed above.
   */
  static fromTokenizerJson(json: unknown): BertTokenizer {
    if (!isRecord(json)) throw new TypeError(`tokenizer.json must be a JSON object: got ${describe(json)}`);
    const model = json.model;
    if (!isRecord(model)) throw new TypeError(`tokenizer.json model must be an object: got ${describe(model)}`);
    if (model.type !== "WordPiece") {
      throw new TypeError(`tokenizer.json model.type must be "WordPiece": got ${describe(model.type)}`);
    }
    if (!isRecord(model.vocab)) {
      throw new TypeError(`tokenizer.json model.vocab must be an object: got ${describe(model.vocab)}`);
    }
    const vocab = new Map<string, number>();
    for (const [token, id] of Object.entries(model.vocab)) {
      vocab.set(token, checkId(id, `tokenizer.json model.vocab[${JSON.stringify(token)}]`));
    }
    const unkToken = model.unk_token ?? "[UNK]";
    if (typeof unkToken !== "string") {
      throw new TypeError(`tokenizer.json model.unk_token must be a string: got ${describe(unkToken)}`);
    }
    const prefix = model.continuing_subword_prefix ?? "##";
    if (typeof prefix !== "string") {
      throw new TypeError(`tokenizer.json model.continuing_subword_prefix must be a string: got ${describe(prefix)}`);
    }
    const maxChars = model.max_input_chars_per_word ?? 100;
    if (typeof maxChars !== "number" || !Number.isInteger(maxChars) || maxChars < 1) {
      throw new TypeError(
        `tokenizer.json model.max_input_chars_per_word must be a positive integer: got ${describe(maxChars)}`,
      );
    }

    const normalizer = json.normalizer ?? null;
    let cleanText = false, chinese = false, lowercase = false, strip = false;
    if (normalizer !== null) {
      if (!isRecord(normalizer) || normalizer.type !== "BertNormalizer") {
        const t = isRecord(normalizer) ? normalizer.type : normalizer;
        throw new TypeError(
          `tokenizer.json normalizer.type must be "BertNormalizer" (or no normalizer): got ${describe(t)}`,
        );
      }
      cleanText = optBool(normalizer, "clean_text", "tokenizer.json normalizer", true);
      chinese = optBool(normalizer, "handle_chinese_chars", "tokenizer.json normalizer", true);
      lowercase = optBool(normalizer, "lowercase", "tokenizer.json normalizer", true);
      strip = optBool(normalizer, "strip_accents", "tokenizer.json normalizer", lowercase);
    }
    const pre = json.pre_tokenizer ?? null;
    if (pre !== null && !(isRecord(pre) && pre.type === "BertPreTokenizer")) {
      const t = isRecord(pre) ? pre.type : pre;
      throw new TypeError(`tokenizer.json pre_tokenizer.type must be "BertPreTokenizer" (or none): got ${describe(t)}`);
    }

    const addedRaw = json.added_tokens ?? [];
    if (!Array.isArray(addedRaw)) {
      throw new TypeError(`tokenizer.json added_tokens must be an array: got ${describe(addedRaw)}`);
    }
    const added: AddedTokenSpec[] = addedRaw.map((a, i) => {
      const where = `tokenizer.json added_tokens[${i}]`;
      if (!isRecord(a)) throw new TypeError(`${where} must be an object: got ${describe(a)}`);
      if (typeof a.content !== "string" || a.content === "") {
        throw new TypeError(`${where}.content must be a non-empty string: got ${describe(a.content)}`);
      }
      return {
        content: a.content,
        id: checkId(a.id, `${where}.id`),
        singleWord: optBool(a, "single_word", where, false),
        normalized: optBool(a, "normalized", where, false),
      };
    });
    const idOf = (token: string): number | undefined => added.find((a) => a.content === token)?.id ?? vocab.get(token);

    const [clsId, sepId] = postProcessorIds(json.post_processor ?? null);
    const padding = json.padding;
    let padId: number | undefined;
    if (isRecord(padding) && padding.pad_id !== undefined) {
      padId = checkId(padding.pad_id, "tokenizer.json padding.pad_id");
    } else {
      padId = idOf("[PAD]");
    }
    if (padId === undefined) throw new TypeError(`tokenizer.json has no padding.pad_id and no "[PAD]" token`);

    return new BertTokenizer({
      flavor: "fast",
      vocab,
      unkToken,
      unkId: vocab.get(unkToken),
      clsId,
      sepId,
      padId,
      prefix,
      maxInputCharsPerWord: maxChars,
      added,
      basic: normalizer !== null,
      cleanText,
      chinese,
      lowercase,
      strip,
      preTokenize: pre !== null,
      neverSplit: new Set(),
      basicNeverSplit: new Set(),
    });
  }

  /**
   * Loads a tokenizer folder as saved by transformers (`tokenizer/` of a diffusers pipeline): `tokenizer.json` when
   * present (fast flavor, as transformers ≥ 5 loads it), otherwise `vocab.txt` with the options of
   * `tokenizer_config.json` (`do_lower_case`, `strip_accents`, `tokenize_chinese_chars`, `do_basic_tokenize`,
   * `never_split`, the special tokens, `added_tokens_decoder`) and `special_tokens_map.json`, both optional
   * (slow flavor, as transformers 4 loads it).
   *
   * @param dir the folder, as a path or `file:` URL.
   * @throws {Deno.errors.NotFound} when the folder has neither `tokenizer.json` nor `vocab.txt`.
   * @throws {TypeError} when a file is not valid JSON of the expected shape (the message names file and field).
   */
  static async fromDirectory(dir: string | URL): Promise<BertTokenizer> {
    const base = typeof dir === "string" ? dir.replace(/\/+$/, "") : dir.href.replace(/\/+$/, "");
    const join = (name: string): string | URL =>
      typeof dir === "string" ? `${base}/${name}` : new URL(`${base}/${name}`);
    const readOptional = async (name: string): Promise<string | undefined> => {
      try {
        return await Deno.readTextFile(join(name));
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return undefined;
        throw e;
      }
    };
    const parse = (name: string, text: string): unknown => {
      try {
        return JSON.parse(text);
      } catch (e) {
        throw new TypeError(`${name} in ${String(dir)} is not valid JSON: ${(e as Error).message}`);
      }
    };
    const tokenizerJson = await readOptional("tokenizer.json");
    if (tokenizerJson !== undefined) return BertTokenizer.fromTokenizerJson(parse("tokenizer.json", tokenizerJson));

    const vocabTxt = await readOptional("vocab.txt");
    if (vocabTxt === undefined) {
      throw new Deno.errors.NotFound(`${String(dir)} has neither tokenizer.json nor vocab.txt`);
    }
    const configText = await readOptional("tokenizer_config.json");
    const mapText = await readOptional("special_tokens_map.json");
    const config = configText === undefined ? {} : parse("tokenizer_config.json", configText);
    const map = mapText === undefined ? {} : parse("special_tokens_map.json", mapText);
    if (!isRecord(config)) throw new TypeError(`tokenizer_config.json must be a JSON object: got ${describe(config)}`);
    if (!isRecord(map)) throw new TypeError(`special_tokens_map.json must be a JSON object: got ${describe(map)}`);
    return BertTokenizer.fromVocab(vocabTxt, optionsFromConfig(config, map));
  }

  /** Which Hugging Face implementation this tokenizer reproduces. */
  get flavor(): BertTokenizerFlavor {
    return this.#r.flavor;
  }

  /** Number of distinct tokens in the vocabulary (a duplicated `vocab.txt` line counts once, as in transformers). */
  get vocabSize(): number {
    return this.#r.vocab.size;
  }

  /** The id of `token` in the vocabulary or among the added tokens, or `undefined`. */
  tokenToId(token: string): number | undefined {
    return this.#r.added.find((a) => a.content === token)?.id ?? this.#r.vocab.get(token);
  }

  /**
   * The tokens of `text`, without `[CLS]`/`[SEP]`: transformers' `tokenizer.tokenize(text)`.
   *
   * @throws {TypeError} when `text` is not a string.
   */
  tokenize(text: string): string[] {
    return this.#run(text).map((t) => t.token);
  }

  /**
   * `[CLS] tokens [SEP]` ids padded with `[PAD]` to `maxLength`, keeping the first `maxLength - 2` tokens of a longer
   * text: `tokenizer(text, padding="max_length", max_length=maxLength, truncation=True).input_ids`.
   *
   * @throws {TypeError} when `text` is not a string.
   * @throws {RangeError} when `maxLength` is not an integer ≥ 2.
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const maxLength = checkMaxLength(options);
    const out = new Array<number>(maxLength);
    this.#encodeInto(text, maxLength, (i, id) => (out[i] = id));
    return out;
  }

  /**
   * {@linkcode BertTokenizer.encode} for several texts at once, as one int64 `[batch, maxLength]` array ready to feed
   * the text encoder (the pipeline's `[uncond, cond]` classifier-free-guidance batch, for example).
   *
   * @throws {TypeError} when `texts` is not an array of strings (the message names the index).
   * @throws {RangeError} when `maxLength` is not an integer ≥ 2.
   */
  encodeBatch(texts: readonly string[], options: EncodeOptions = {}): EncodedBatch {
    if (!Array.isArray(texts)) throw new TypeError(`texts must be an array of strings: got ${describe(texts)}`);
    const maxLength = checkMaxLength(options);
    const int64 = new BigInt64Array(texts.length * maxLength);
    texts.forEach((text, b) => {
      if (typeof text !== "string") throw new TypeError(`texts[${b}] must be a string: got ${describe(text)}`);
      this.#encodeInto(text, maxLength, (i, id) => (int64[b * maxLength + i] = BigInt(id)));
    });
    return { int64, shape: [texts.length, maxLength] };
  }

  #encodeInto(text: string, maxLength: number, set: (i: number, id: number) => void): void {
    const tokens = this.#run(text);
    const n = Math.min(tokens.length, maxLength - 2);
    set(0, this.#r.clsId);
    for (let i = 0; i < n; i++) set(i + 1, tokens[i]!.id);
    set(n + 1, this.#r.sepId);
    for (let i = n + 2; i < maxLength; i++) set(i, this.#r.padId);
  }

  /** The whole pipeline: added tokens out of the raw text, then the flavor's normalisation and WordPiece. */
  #run(text: string): Array<{ token: string; id: number }> {
    if (typeof text !== "string") throw new TypeError(`text must be a string: got ${describe(text)}`);
    return this.#r.flavor === "slow" ? this.#runSlow(text) : this.#runFast(text);
  }

  /** transformers `PreTrainedTokenizer.tokenize` → `BertTokenizer._tokenize`, then `convert_tokens_to_ids`. */
  #runSlow(text: string): Array<{ token: string; id: number }> {
    const r = this.#r;
    // The trie split keeps every match; `single_word` tokens glued to a neighbour are merged back into it.
    const parts = splitOnTokens(text, r.added, () => true).map((p) => p.text);
    const byContent = new Map(r.added.map((a) => [a.content, a]));
    for (let i = 0; i < parts.length; i++) {
      const spec = byContent.get(parts[i]!);
      if (spec === undefined || !spec.singleWord) continue;
      const left = i > 0 ? parts[i - 1]! : "";
      const right = i < parts.length - 1 ? parts[i + 1]! : "";
      if (left !== "" && !left.endsWith(" ")) {
        parts[i - 1] = left + parts[i]!;
        parts[i] = "";
      } else if (right !== "" && !right.startsWith(" ")) {
        parts[i] = parts[i]! + right;
        parts[i + 1] = "";
      }
    }
    const out: Array<{ token: string; id: number }> = [];
    for (const part of parts) {
      if (part === "") continue;
      const spec = byContent.get(part);
      if (spec !== undefined) {
        out.push({ token: part, id: spec.id });
        continue;
      }
      for (const token of this.#slowTokenize(part)) out.push({ token, id: this.#idOrUnk(token) });
    }
    return out;
  }

  /** `BertTokenizer._tokenize`: `BasicTokenizer.tokenize`, then WordPiece except on `never_split` words. */
  #slowTokenize(text: string): string[] {
    const r = this.#r;
    const out: string[] = [];
    if (!r.basic) {
      for (const word of pythonSplit(text)) this.#wordPiece(word, out);
      return out;
    }
    // BasicTokenizer._clean_text and _tokenize_chinese_chars.
    let cleaned = "";
    for (const ch of text) {
      const cp = ch.codePointAt(0)!;
      if (cp === 0 || cp === 0xfffd || isControl(ch, cp)) continue;
      if (isWhitespaceSlow(ch, cp)) cleaned += " ";
      else if (r.chinese && isChineseCharSlow(cp)) cleaned += ` ${ch} `;
      else cleaned += ch;
    }
    const split: string[] = [];
    for (let word of pythonSplit(cleaned.normalize("NFC"))) {
      if (r.basicNeverSplit.has(word)) {
        split.push(word);
        continue;
      }
      if (r.lowercase) word = word.toLowerCase(); // per word, as Python's str.lower(): a final Σ becomes ς
      if (r.strip) word = stripAccents(word);
      // _run_split_on_punc checks never_split again, on the lower-cased word.
      if (r.basicNeverSplit.has(word)) split.push(word);
      else splitOnPunctuation(word, split);
    }
    for (const word of pythonSplit(split.join(" "))) {
      if (r.neverSplit.has(word)) out.push(word);
      else this.#wordPiece(word, out);
    }
    return out;
  }

  /** tokenizers `Tokenizer::encode`: AddedVocabulary split, BertNormalizer, BertPreTokenizer, WordPiece. */
  #runFast(text: string): Array<{ token: string; id: number }> {
    const r = this.#r;
    const raw = r.added.filter((a) => !a.normalized);
    // `normalized` added tokens are matched by their normalised text, which is also the token string they produce.
    const normalizedTokens = r.added.filter((a) => a.normalized)
      .map((a) => ({ ...a, content: this.#normalize(a.content) }))
      .filter((a) => a.content !== "");
    const out: Array<{ token: string; id: number }> = [];
    for (const piece of splitOnTokens(text, raw, acceptSingleWord)) {
      if (piece.added !== null) {
        out.push({ token: piece.added.content, id: piece.added.id });
        continue;
      }
      for (const sub of splitOnTokens(this.#normalize(piece.text), normalizedTokens, acceptSingleWord)) {
        if (sub.added !== null) {
          out.push({ token: sub.added.content, id: sub.added.id });
          continue;
        }
        const words: string[] = [];
        if (r.preTokenize) {
          for (const chunk of sub.text.split(RUST_WHITESPACE_RUN)) if (chunk !== "") splitOnPunctuation(chunk, words);
        } else if (sub.text !== "") {
          words.push(sub.text);
        }
        const tokens: string[] = [];
        for (const word of words) this.#wordPiece(word, tokens);
        for (const token of tokens) out.push({ token, id: this.#idOrUnk(token) });
      }
    }
    return out;
  }

  /** tokenizers' `BertNormalizer::normalize` (the identity when the file has no normalizer). */
  #normalize(text: string): string {
    const r = this.#r;
    if (!r.basic) return text;
    let s = "";
    for (const ch of text) {
      const cp = ch.codePointAt(0)!;
      if (r.cleanText) {
        if (cp === 0 || cp === 0xfffd || isControl(ch, cp)) continue;
        if (isWhitespaceFast(ch, cp)) {
          s += " ";
          continue;
        }
      }
      s += r.chinese && isChineseCharFast(cp) ? ` ${ch} ` : ch;
    }
    if (r.strip) s = stripAccents(s);
    if (r.lowercase) {
      // NormalizedString::lowercase maps each character on its own (no final-sigma context).
      let lower = "";
      for (const ch of s) lower += ch.toLowerCase();
      s = lower;
    }
    return s;
  }

  /** Greedy longest-match-first WordPiece over code points (`WordpieceTokenizer.tokenize` / `WordPiece::tokenize`). */
  #wordPiece(word: string, out: string[]): void {
    const r = this.#r;
    const cps = Array.from(word);
    if (cps.length > r.maxInputCharsPerWord) {
      out.push(r.unkToken);
      return;
    }
    // UTF-16 offsets of each code point, so candidates are plain slices.
    const offsets = new Array<number>(cps.length + 1);
    offsets[0] = 0;
    for (let i = 0; i < cps.length; i++) offsets[i + 1] = offsets[i]! + cps[i]!.length;
    const start0 = out.length;
    let start = 0;
    while (start < cps.length) {
      let end = cps.length;
      let found: string | null = null;
      while (start < end) {
        const sub = word.slice(offsets[start], offsets[end]);
        const candidate = start > 0 ? r.prefix + sub : sub;
        if (r.vocab.has(candidate)) {
          found = candidate;
          break;
        }
        end--;
      }
      if (found === null) {
        out.length = start0; // the whole word becomes [UNK]
        out.push(r.unkToken);
        return;
      }
      out.push(found);
      start = end;
    }
  }

  #idOrUnk(token: string): number {
    const id = this.#r.vocab.get(token) ?? this.#r.unkId;
    if (id === undefined) throw new TypeError(`the vocabulary has no unkToken ${JSON.stringify(this.#r.unkToken)}`);
    return id;
  }
}

/** Python's `text.strip().split()`: runs of Python whitespace separate words; empty words are dropped. */
function pythonSplit(text: string): string[] {
  return text.split(PYTHON_WHITESPACE_RUN).filter((w) => w !== "");
}

/** `_run_split_on_punc` / BertPreTokenizer's punctuation rule: each punctuation character is a word of its own. */
function splitOnPunctuation(word: string, out: string[]): void {
  let current = "";
  for (const ch of word) {
    if (isPunctuation(ch, ch.codePointAt(0)!)) {
      if (current !== "") out.push(current);
      out.push(ch);
      current = "";
    } else {
      current += ch;
    }
  }
  if (current !== "") out.push(current);
}

/** tokenizers' `single_word` rule: the match must not touch a word character (`\w`) on either side. */
function acceptSingleWord(text: string, start: number, end: number, token: AddedTokenSpec): boolean {
  if (!token.singleWord) return true;
  const before = Array.from(text.slice(Math.max(0, start - 2), start)).at(-1) ?? "";
  const after = end < text.length ? String.fromCodePoint(text.codePointAt(end)!) : "";
  return !RUST_WORD_CHAR.test(before) && !RUST_WORD_CHAR.test(after);
}

function checkMaxLength(options: EncodeOptions): number {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`options must be an object: got ${describe(options)}`);
  }
  const maxLength = options.maxLength ?? DEFAULT_MAX_LENGTH;
  if (typeof maxLength !== "number" || !Number.isInteger(maxLength) || maxLength < 2) {
    throw new RangeError(`maxLength must be an integer >= 2 (room for [CLS] and [SEP]): got ${describe(maxLength)}`);
  }
  return maxLength;
}
