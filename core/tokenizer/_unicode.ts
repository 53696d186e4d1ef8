/**
 * Character classes of BERT's basic tokenization, in the two variants Hugging Face ships:
 * - "slow": transformers' Python `BasicTokenizer` (`tokenization_python.py` `_is_whitespace`, `_is_control`,
 *   `_is_punctuation`; `models/bert/tokenization_bert.py` `_is_chinese_char`) with Python's `str.split()`;
 * - "fast": the Rust `tokenizers` crate (`normalizers/bert.rs`, `pre_tokenizers/bert.rs`).
 *
 * They agree on punctuation and control characters (`unicodedata.category(c).startswith("C")` and Rust's
 * `is_other()` are both general category C*). Their whitespace tests differ (Rust's White_Space adds `\v`, `\f`,
 * U+0085, U+2028, U+2029) but not their results: both delete C* characters first, and Python's `str.split()` then
 * splits on U+2028/U+2029 too. They do differ on one CJK range.
 *
 * @module
 */

/** General category P* (Python `category(c).startswith("P")`, Rust `is_punctuation()`). */
const PUNCTUATION = /^\p{P}$/u;
/** General category C* = Cc, Cf, Cs, Co, Cn. */
const OTHER = /^\p{C}$/u;
/** General category Zs (space separators). */
const SPACE_SEPARATOR = /^\p{Zs}$/u;
/** Unicode White_Space, which is what Rust's `char::is_whitespace` tests. */
const WHITE_SPACE = /^\p{White_Space}$/u;
/** General category Mn (non-spacing marks), what both variants drop after NFD to strip accents. */
const NONSPACING_MARK = /\p{Mn}/gu;

/**
 * BERT's punctuation: every non-alphanumeric printable ASCII character (`$`, `^`, `` ` `` … although Unicode files some
 * of them under S*) plus Unicode P*. Identical in both variants.
 */
export function isPunctuation(ch: string, cp: number): boolean {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) {
    return true;
  }
  return cp > 127 && PUNCTUATION.test(ch);
}

/** `_is_control` / `is_control`: category C*, except tab, newline and carriage return (treated as whitespace). */
export function isControl(ch: string, cp: number): boolean {
  if (cp === 9 || cp === 10 || cp === 13) return false;
  return OTHER.test(ch);
}

/** transformers' `_is_whitespace`: space, `\t`, `\n`, `\r` or category Zs. */
export function isWhitespaceSlow(ch: string, cp: number): boolean {
  if (cp === 32 || cp === 9 || cp === 10 || cp === 13) return true;
  return cp > 127 && SPACE_SEPARATOR.test(ch);
}

/** tokenizers' `is_whitespace`: `\t`, `\n`, `\r` or Unicode White_Space (tested after C* characters are deleted). */
export function isWhitespaceFast(ch: string, _cp: number): boolean {
  return WHITE_SPACE.test(ch);
}

/**
 * The characters Python's `str.split()` (no argument) splits on: category Zs or bidirectional class WS, B or S.
 * transformers' `whitespace_tokenize` uses it.
 */
// deno-lint-ignore no-control-regex -- U+001C..U+001F are whitespace to Python's str.split(); matching them is the point
export const PYTHON_WHITESPACE_RUN = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

/** What Rust's `char::is_whitespace` splits on (BertPreTokenizer). */
export const RUST_WHITESPACE_RUN = /\p{White_Space}+/u;

/**
 * transformers' `BasicTokenizer._is_chinese_char`: the CJK Unified Ideographs blocks and extensions, as code-point
 * ranges (Hangul, Hiragana and Katakana are not included on purpose).
 */
export function isChineseCharSlow(cp: number): boolean {
  return (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f);
}

/** tokenizers' `is_chinese_char`: the same list, except that its fifth extension range starts at 0x2B920. */
export function isChineseCharFast(cp: number): boolean {
  return (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b920 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f);
}

/** `_run_strip_accents` / `do_strip_accents`: NFD, then drop every non-spacing mark (Mn). */
export function stripAccents(text: string): string {
  return text.normalize("NFD").replace(NONSPACING_MARK, "");
}

/** Rust's regex `\w` (Unicode word character), used by tokenizers to decide whether an added token is a single word. */
export const RUST_WORD_CHAR = /[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]/u;
