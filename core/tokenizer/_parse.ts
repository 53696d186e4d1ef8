/**
 * Parsing helpers of the tokenizer sources: validation with messages that name the field and the value, the
 * `tokenizer.json` post-processor, and transformers' `tokenizer_config.json` / `special_tokens_map.json` keys.
 *
 * @module
 */
import type { AddedTokenSpec, BertTokenizerOptions } from "./bert_tokenizer.ts";

/** A short rendering of a bad value for error messages (strings quoted, objects by kind). */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value);
  return Array.isArray(value) ? "an array" : typeof value;
}

/** True for a plain JSON object (not null, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `obj[key]` as a boolean, `fallback` when absent or null; a `TypeError` naming `where.key` otherwise. */
export function optBool(obj: Record<string, unknown>, key: string, where: string, fallback: boolean): boolean {
  const v = obj[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "boolean") throw new TypeError(`${where}.${key} must be a boolean: got ${describe(v)}`);
  return v;
}

/** A non-negative safe-integer token id, or a `TypeError` naming `where`. */
export function checkId(id: unknown, where: string): number {
  if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) {
    throw new TypeError(`${where} must be a non-negative integer id: got ${describe(id)}`);
  }
  return id;
}

/** Validates `BertTokenizerOptions.addedTokens` entries. */
export function validateAddedTokens(value: unknown, where: string): AddedTokenSpec[] {
  if (!Array.isArray(value)) throw new TypeError(`${where} must be an array: got ${describe(value)}`);
  return value.map((a, i) => {
    if (!isRecord(a)) throw new TypeError(`${where}[${i}] must be an object: got ${describe(a)}`);
    if (typeof a.content !== "string" || a.content === "") {
      throw new TypeError(`${where}[${i}].content must be a non-empty string: got ${describe(a.content)}`);
    }
    return {
      content: a.content,
      id: checkId(a.id, `${where}[${i}].id`),
      singleWord: optBool(a, "singleWord", `${where}[${i}]`, false),
      normalized: optBool(a, "normalized", `${where}[${i}]`, false),
    };
  });
}

/** `[CLS]` and `[SEP]` ids from a `TemplateProcessing` (`[CLS] $A [SEP]`) or `BertProcessing` post-processor. */
export function postProcessorIds(pp: unknown): [number, number] {
  if (!isRecord(pp)) {
    throw new TypeError(`tokenizer.json post_processor must add [CLS] and [SEP]: got ${describe(pp)}`);
  }
  if (pp.type === "BertProcessing") {
    const pair = (key: "cls" | "sep"): number => {
      const v = pp[key];
      if (!Array.isArray(v) || v.length !== 2) {
        throw new TypeError(`tokenizer.json post_processor.${key} must be [token, id]: got ${describe(v)}`);
      }
      return checkId(v[1], `tokenizer.json post_processor.${key}[1]`);
    };
    return [pair("cls"), pair("sep")];
  }
  if (pp.type === "TemplateProcessing") {
    const single = pp.single;
    const specials = pp.special_tokens;
    const name = (item: unknown): string | undefined =>
      isRecord(item) && isRecord(item.SpecialToken) && typeof item.SpecialToken.id === "string"
        ? item.SpecialToken.id
        : undefined;
    const isSeqA = (item: unknown): boolean => isRecord(item) && isRecord(item.Sequence) && item.Sequence.id === "A";
    if (!Array.isArray(single) || single.length !== 3 || !isSeqA(single[1])) {
      throw new TypeError(`tokenizer.json post_processor.single must be [SpecialToken, Sequence A, SpecialToken]`);
    }
    const idOf = (item: unknown, pos: string): number => {
      const n = name(item);
      const entry = n !== undefined && isRecord(specials) ? specials[n] : undefined;
      if (!isRecord(entry) || !Array.isArray(entry.ids) || entry.ids.length !== 1) {
        throw new TypeError(`tokenizer.json post_processor.single ${pos} must be a special token with one id`);
      }
      return checkId(entry.ids[0], `tokenizer.json post_processor.special_tokens[${JSON.stringify(n)}].ids[0]`);
    };
    return [idOf(single[0], "first item"), idOf(single[2], "last item")];
  }
  throw new TypeError(
    `tokenizer.json post_processor.type must be "TemplateProcessing" or "BertProcessing": got ${describe(pp.type)}`,
  );
}

/** Maps transformers' `tokenizer_config.json` / `special_tokens_map.json` keys to {@linkcode BertTokenizerOptions}. */
export function optionsFromConfig(config: Record<string, unknown>, map: Record<string, unknown>): BertTokenizerOptions {
  const bool = (key: string): boolean | undefined => {
    const v = config[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "boolean") {
      throw new TypeError(`tokenizer_config.json ${key} must be a boolean: got ${describe(v)}`);
    }
    return v;
  };
  // A special token is a string or an AddedToken dict {"content": ...}; special_tokens_map.json overrides the config.
  const special = (key: string): string | undefined => {
    for (const [file, obj] of [["special_tokens_map.json", map], ["tokenizer_config.json", config]] as const) {
      const v = obj[key];
      if (v === undefined || v === null) continue;
      if (typeof v === "string") return v;
      if (isRecord(v) && typeof v.content === "string") return v.content;
      throw new TypeError(`${file} ${key} must be a string or {"content": string}: got ${describe(v)}`);
    }
    return undefined;
  };
  const options: BertTokenizerOptions = { flavor: "slow" };
  const doLowerCase = bool("do_lower_case");
  if (doLowerCase !== undefined) options.doLowerCase = doLowerCase;
  const stripAccentsOpt = bool("strip_accents");
  if (stripAccentsOpt !== undefined) options.stripAccents = stripAccentsOpt;
  const chinese = bool("tokenize_chinese_chars");
  if (chinese !== undefined) options.tokenizeChineseChars = chinese;
  const basic = bool("do_basic_tokenize");
  if (basic !== undefined) options.doBasicTokenize = basic;
  const never = config.never_split;
  if (never !== undefined && never !== null) {
    if (!Array.isArray(never) || never.some((t) => typeof t !== "string")) {
      throw new TypeError(`tokenizer_config.json never_split must be an array of strings: got ${describe(never)}`);
    }
    options.neverSplit = never as string[];
  }
  const unk = special("unk_token"), sep = special("sep_token"), pad = special("pad_token");
  const cls = special("cls_token"), mask = special("mask_token");
  if (unk !== undefined) options.unkToken = unk;
  if (sep !== undefined) options.sepToken = sep;
  if (pad !== undefined) options.padToken = pad;
  if (cls !== undefined) options.clsToken = cls;
  if (mask !== undefined) options.maskToken = mask;
  // added_tokens_decoder: {"id": {"content", "single_word", ...}}; the specials are in it too, with their vocab ids.
  const decoder = config.added_tokens_decoder;
  if (decoder !== undefined && decoder !== null) {
    if (!isRecord(decoder)) {
      throw new TypeError(`tokenizer_config.json added_tokens_decoder must be an object: got ${describe(decoder)}`);
    }
    options.addedTokens = Object.entries(decoder).map(([id, spec]) => {
      const where = `tokenizer_config.json added_tokens_decoder[${JSON.stringify(id)}]`;
      if (!/^\d+$/.test(id)) throw new TypeError(`${where}: the key must be a non-negative integer id`);
      if (!isRecord(spec) || typeof spec.content !== "string" || spec.content === "") {
        throw new TypeError(`${where}.content must be a non-empty string`);
      }
      return { content: spec.content, id: Number(id), singleWord: optBool(spec, "single_word", where, false) };
    });
  }
  return options;
}
