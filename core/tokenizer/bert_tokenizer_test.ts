import assert from "node:assert/strict";
import { BertTokenizer, DEFAULT_MAX_LENGTH } from "./mod.ts";
import type { BertTokenizerOptions } from "./mod.ts";

const FIXTURES = new URL("../../tests/fixtures/diffusers-tiny/", import.meta.url);
const vocabTxt = await Deno.readTextFile(new URL("vocab/vocab.txt", FIXTURES));
const tokenizerJson: unknown = JSON.parse(
  await Deno.readTextFile(new URL("ldm-text2im/tokenizer/tokenizer.json", FIXTURES)),
);
const reference = JSON.parse(await Deno.readTextFile(new URL("tokenizer_reference.json", FIXTURES))) as {
  prompts: string[];
  tokens: string[][];
  padded: number[][];
};

/** A vocabulary laid out like bert-base-uncased's head: [PAD]=0, [unused0..98], [UNK]=100, [CLS]=101, [SEP]=102. */
function bertBaseLikeVocab(words: readonly string[]): string {
  const unused = Array.from({ length: 99 }, (_, i) => `[unused${i}]`);
  return ["[PAD]", ...unused, "[UNK]", "[CLS]", "[SEP]", "[MASK]", ...words].join("\n") + "\n";
}

/** A tiny vocabulary: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4, then `words` from id 5. */
function tiny(words: readonly string[], options?: BertTokenizerOptions): BertTokenizer {
  return BertTokenizer.fromVocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ...words].join("\n"), options);
}

Deno.test("BertTokenizer reproduces every tokenizer_reference.json prompt from each source", async (t) => {
  assert.ok(reference.prompts.length >= 17);
  const sources: Array<[string, () => BertTokenizer | Promise<BertTokenizer>]> = [
    ["vocab.txt (slow)", () => BertTokenizer.fromVocab(vocabTxt)],
    ["vocab.txt (fast)", () => BertTokenizer.fromVocab(vocabTxt, { flavor: "fast" })],
    ["tokenizer.json", () => BertTokenizer.fromTokenizerJson(tokenizerJson)],
    [
      "fromDirectory(ldm-text2im/tokenizer)",
      () => BertTokenizer.fromDirectory(new URL("ldm-text2im/tokenizer", FIXTURES)),
    ],
  ];
  for (const [name, make] of sources) {
    await t.step(name, async () => {
      const tokenizer = await make();
      reference.prompts.forEach((prompt, i) => {
        assert.deepEqual(tokenizer.tokenize(prompt), reference.tokens[i], `tokens of ${JSON.stringify(prompt)}`);
        assert.deepEqual(tokenizer.encode(prompt), reference.padded[i], `ids of ${JSON.stringify(prompt)}`);
      });
      const batch = tokenizer.encodeBatch(reference.prompts);
      assert.deepEqual(batch.shape, [reference.prompts.length, 77]);
      assert.deepEqual(Array.from(batch.int64, Number), reference.padded.flat());
    });
  }
});

Deno.test("BertTokenizer.fromVocab() lets a later duplicate line win, as transformers' load_vocab", () => {
  const tokenizer = BertTokenizer.fromVocab(vocabTxt);
  assert.equal(tokenizer.tokenToId("##s"), 227); // lines 210 and 228 of vocab.txt
  assert.equal(tokenizer.vocabSize, 233);
  assert.equal(BertTokenizer.fromTokenizerJson(tokenizerJson).tokenToId("##s"), 227);
  // CRLF files give the same tokens; a missing final newline changes nothing.
  const crlf = BertTokenizer.fromVocab(vocabTxt.replace(/\n/g, "\r\n").trimEnd());
  assert.deepEqual(crlf.encode("A painting of a squirrel"), tokenizer.encode("A painting of a squirrel"));
});

Deno.test("BertTokenizer.encode() of the empty prompt is [CLS] [SEP] [PAD]… with a bert-base-like vocab", () => {
  const tokenizer = BertTokenizer.fromVocab(bertBaseLikeVocab(["a", "cat"]));
  assert.deepEqual(tokenizer.encode(""), [101, 102, ...new Array(75).fill(0)]);
  assert.deepEqual(tokenizer.encode("  \t\n "), [101, 102, ...new Array(75).fill(0)]);
  assert.deepEqual(tokenizer.encode("A cat", { maxLength: 5 }), [101, 104, 105, 102, 0]);
  assert.equal(DEFAULT_MAX_LENGTH, 77);
});

Deno.test("BertTokenizer.encode() truncates to [CLS] tokens[:maxLength-2] [SEP]", () => {
  const tokenizer = tiny(["a", "b"]);
  const text = Array.from({ length: 100 }, (_, i) => (i % 2 ? "b" : "a")).join(" ");
  const ids = tokenizer.encode(text);
  assert.equal(ids.length, 77);
  assert.deepEqual(ids.slice(0, 4), [2, 5, 6, 5]);
  assert.equal(ids[75], 5); // token 75 (index 74) is "a"
  assert.equal(ids[76], 3);
  assert.deepEqual(tokenizer.encode(text, { maxLength: 2 }), [2, 3]);
  assert.deepEqual(tokenizer.encode("a b", { maxLength: 4 }), [2, 5, 6, 3]); // exactly fits: no padding
});

Deno.test("BertTokenizer splits CJK ideographs, with each flavor's ranges", () => {
  const words = ["猫", "狗", "and", "\u{2B820}", "ひらかな"];
  for (const flavor of ["slow", "fast"] as const) {
    const tokenizer = tiny(words, { flavor });
    assert.deepEqual(tokenizer.tokenize("猫and狗"), ["猫", "and", "狗"], flavor);
    // Hiragana is not in the CJK ranges: it stays one word (and loses its dakuten, a non-spacing mark after NFD).
    assert.deepEqual(tokenizer.tokenize("ひらがな"), ["ひらかな"], flavor);
  }
  // U+2B820 is inside transformers' _is_chinese_char range but outside tokenizers' (which starts at U+2B920).
  assert.deepEqual(tiny(words).tokenize("and\u{2B820}and"), ["and", "\u{2B820}", "and"]);
  assert.deepEqual(tiny(words, { flavor: "fast" }).tokenize("and\u{2B820}and"), ["[UNK]"]);
  assert.deepEqual(tiny(words, { tokenizeChineseChars: false }).tokenize("猫狗"), ["[UNK]"]);
});

Deno.test("BertTokenizer lower-cases and strips accents as configured", () => {
  const words = ["cafe", "café", "Café", "CAFE", "ecole"];
  assert.deepEqual(tiny(words).tokenize("CAFÉ École"), ["cafe", "ecole"]);
  assert.deepEqual(tiny(words, { stripAccents: false }).tokenize("CAFÉ"), ["café"]);
  assert.deepEqual(tiny(words, { doLowerCase: false }).tokenize("Café CAFE"), ["Café", "CAFE"]);
  assert.deepEqual(tiny(words, { doLowerCase: false, stripAccents: true }).tokenize("CAFÉ"), ["CAFE"]);
  // Decomposed input: the slow tokenizer composes (NFC) before looking words up, the fast one does not.
  assert.deepEqual(tiny(words, { stripAccents: false }).tokenize("cafe\u0301"), ["café"]);
  assert.deepEqual(tiny(words, { stripAccents: false, flavor: "fast" }).tokenize("cafe\u0301"), ["[UNK]"]);
  // Final sigma: Python lower-cases per word (ς at the end), tokenizers per character (σ).
  const greek = ["οδος", "οδοσ"];
  assert.deepEqual(tiny(greek, { stripAccents: false }).encode("ΟΔΟΣ", { maxLength: 3 }), [2, 5, 3]);
  assert.deepEqual(tiny(greek, { stripAccents: false, flavor: "fast" }).encode("ΟΔΟΣ", { maxLength: 3 }), [2, 6, 3]);
});

Deno.test("BertTokenizer removes control characters and normalises whitespace", () => {
  const words = ["ab", "a", "b"];
  for (const flavor of ["slow", "fast"] as const) {
    const tokenizer = tiny(words, { flavor });
    // NUL, U+FFFD, Cc and Cf (zero-width space, BOM) are deleted: the word closes up.
    assert.deepEqual(tokenizer.tokenize("a\u0000b a\ufffdb a\u0007b a\u200bb a\ufeffb"), new Array(5).fill("ab"));
    // Zs spaces, tab, newline, CR and line/paragraph separators split words.
    assert.deepEqual(tokenizer.tokenize("a\u00a0b\u3000a\tb\r\na\u2028b"), ["a", "b", "a", "b", "a", "b"]);
    // A private-use character (Co) is removed like a control character.
    assert.deepEqual(tokenizer.tokenize("a\ue000b"), ["ab"]);
    // \v, \f and U+0085 are White_Space to Rust, but both delete them as Cc before looking at whitespace.
    assert.deepEqual(tokenizer.tokenize("a\vb a\fb a\u0085b"), ["ab", "ab", "ab"]);
  }
});

Deno.test("BertTokenizer splits punctuation (ASCII symbols and Unicode P*) into single tokens", () => {
  const tokenizer = tiny(["a", "b", "$", "^", "`", "«", "»", "、", "+"]);
  assert.deepEqual(tokenizer.tokenize("a$b^a`b+a"), ["a", "$", "b", "^", "a", "`", "b", "+", "a"]);
  assert.deepEqual(tokenizer.tokenize("«a»、b"), ["«", "a", "»", "、", "b"]);
  // A non-ASCII symbol (So) is not punctuation: it stays inside the word, which then has no WordPiece split.
  assert.deepEqual(tokenizer.tokenize("a©b"), ["[UNK]"]);
});

Deno.test("BertTokenizer WordPiece: greedy longest match, ## continuations, [UNK] words", () => {
  const tokenizer = tiny(["un", "##aff", "##able", "una", "##ff", "x", "##x"]);
  // Longest first: "una" + "##ff" + "##able" would also cover it, but "un" is not chosen because "una" is longer.
  assert.deepEqual(tokenizer.tokenize("unaffable"), ["una", "##ff", "##able"]);
  // A word with an unmatchable rest is one [UNK], not a partial split.
  assert.deepEqual(tokenizer.tokenize("unaffablez"), ["[UNK]"]);
  // 100 code points are tokenized, 101 are [UNK] (counted in code points: an astral character counts once).
  assert.deepEqual(tokenizer.tokenize("x".repeat(100)), ["x", ...new Array(99).fill("##x")]);
  assert.deepEqual(tokenizer.tokenize("x".repeat(101)), ["[UNK]"]);
  assert.deepEqual(tiny(["x", "##x"], { maxInputCharsPerWord: 3 }).tokenize("xxx xxxx"), ["x", "##x", "##x", "[UNK]"]);
  const astral = tiny(["\u{1F600}", "##\u{1F600}"]);
  assert.deepEqual(astral.tokenize("\u{1F600}".repeat(100)).length, 100);
  assert.deepEqual(astral.tokenize("\u{1F600}".repeat(101)), ["[UNK]"]);
});

Deno.test("BertTokenizer keeps special tokens found in the raw text", () => {
  for (const flavor of ["slow", "fast"] as const) {
    const tokenizer = tiny(["a", "b", "mask", "[", "]"], { flavor });
    assert.deepEqual(tokenizer.tokenize("a [MASK] b"), ["a", "[MASK]", "b"], flavor);
    assert.deepEqual(tokenizer.tokenize("a[MASK]b"), ["a", "[MASK]", "b"], flavor);
    assert.deepEqual(tokenizer.encode("[CLS]a", { maxLength: 5 }), [2, 2, 5, 3, 0], flavor);
    // Matching is case-sensitive and happens before lower-casing.
    assert.deepEqual(tokenizer.tokenize("[mask]"), ["[", "mask", "]"], flavor);
  }
  const fast = BertTokenizer.fromTokenizerJson(tokenizerJson);
  assert.deepEqual(fast.encode("a [MASK]", { maxLength: 5 }), [2, 47, 4, 3, 0]);
});

Deno.test("BertTokenizer added tokens: single_word and normalized rules", () => {
  const extra = [{ content: "<x>", id: 9, singleWord: true }];
  for (const flavor of ["slow", "fast"] as const) {
    const tokenizer = tiny(["a", "<", "x", ">"], { flavor, addedTokens: extra });
    assert.deepEqual(tokenizer.encode("a <x> a", { maxLength: 5 }), [2, 5, 9, 5, 3], flavor);
    // Glued to a word: not matched, so it is tokenized as text.
    assert.deepEqual(tokenizer.tokenize("a<x>"), ["a", "<", "x", ">"], flavor);
  }
  // A normalized added token (fast flavor) matches the lower-cased text and yields its normalised form.
  const json = structuredClone(tokenizerJson) as { added_tokens: unknown[] };
  json.added_tokens.push({
    id: 232,
    content: "Zebra",
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: true,
    special: false,
  });
  const tokenizer = BertTokenizer.fromTokenizerJson(json);
  assert.deepEqual(tokenizer.tokenize("a ZEBRA"), ["a", "zebra"]);
  assert.deepEqual(tokenizer.encode("a ZEBRA", { maxLength: 4 }), [2, 47, 232, 3]);
});

Deno.test("BertTokenizer slow options: neverSplit and doBasicTokenize", () => {
  const tokenizer = tiny(["hello", "[", "]", "world", "##!"], { neverSplit: ["[keep]"] });
  assert.deepEqual(tokenizer.encode("hello [keep]", { maxLength: 5 }), [2, 5, 1, 3, 0]); // kept whole, not in vocab
  assert.deepEqual(tokenizer.tokenize("[keep]"), ["[keep]"]);
  const raw = tiny(["Hello", "world", "##!"], { doBasicTokenize: false });
  assert.deepEqual(raw.tokenize("Hello world!"), ["Hello", "world", "##!"]);
});

Deno.test("BertTokenizer.encodeBatch() stacks encode() rows into an int64 [B, maxLength] feed", () => {
  const tokenizer = BertTokenizer.fromVocab(vocabTxt);
  const texts = ["", "A painting of a squirrel eating a burger"];
  const batch = tokenizer.encodeBatch(texts, { maxLength: 12 });
  assert.deepEqual(batch.shape, [2, 12]);
  assert.ok(batch.int64 instanceof BigInt64Array);
  assert.deepEqual(Array.from(batch.int64, Number), texts.flatMap((t) => tokenizer.encode(t, { maxLength: 12 })));
  assert.deepEqual(tokenizer.encodeBatch([]).shape, [0, 77]);
});

Deno.test("BertTokenizer rejects bad input with the field and the value", () => {
  const tokenizer = BertTokenizer.fromVocab(vocabTxt);
  assert.throws(() => tokenizer.tokenize(42 as unknown as string), { name: "TypeError", message: /text .*got 42/ });
  assert.throws(() => tokenizer.encode(null as unknown as string), { name: "TypeError", message: /got null/ });
  assert.throws(() => tokenizer.encode("a", { maxLength: 1 }), { name: "RangeError", message: /maxLength .*got 1$/ });
  assert.throws(() => tokenizer.encode("a", { maxLength: 7.5 }), RangeError);
  assert.throws(() => tokenizer.encodeBatch(["a", 3 as unknown as string]), {
    name: "TypeError",
    message: /texts\[1\] .*got 3/,
  });
  assert.throws(() => tokenizer.encodeBatch("a" as unknown as string[]), TypeError);
  assert.throws(() => BertTokenizer.fromVocab(3 as unknown as string), { name: "TypeError", message: /vocabTxt/ });
  assert.throws(() => BertTokenizer.fromVocab("a\nb\n"), { name: "TypeError", message: /unkToken "\[UNK\]"/ });
  assert.throws(() => BertTokenizer.fromVocab(vocabTxt, { doLowerCase: "yes" as unknown as boolean }), {
    name: "TypeError",
    message: /options\.doLowerCase .*"yes"/,
  });
  assert.throws(() => BertTokenizer.fromVocab(vocabTxt, { flavor: "rust" as "fast" }), /options\.flavor/);
  const bpe = { ...(tokenizerJson as object), model: { type: "BPE", vocab: {} } };
  assert.throws(() => BertTokenizer.fromTokenizerJson(bpe), { name: "TypeError", message: /model\.type .*"BPE"/ });
  const seq = { ...(tokenizerJson as object), normalizer: { type: "Sequence", normalizers: [] } };
  assert.throws(() => BertTokenizer.fromTokenizerJson(seq), /normalizer\.type .*"Sequence"/);
  assert.throws(() => BertTokenizer.fromTokenizerJson("{}"), /tokenizer\.json must be a JSON object/);
});

Deno.test("BertTokenizer.fromDirectory() reads vocab.txt with tokenizer_config.json and special_tokens_map.json", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/vocab.txt`, ["<pad>", "[UNK]", "[CLS]", "[SEP]", "Cat", "cat"].join("\n"));
    // Cased, and the pad token renamed through special_tokens_map.json (an AddedToken dict).
    await Deno.writeTextFile(
      `${dir}/tokenizer_config.json`,
      JSON.stringify({ do_lower_case: false, strip_accents: null, tokenize_chinese_chars: true, pad_token: "[PAD]" }),
    );
    await Deno.writeTextFile(`${dir}/special_tokens_map.json`, JSON.stringify({ pad_token: { content: "<pad>" } }));
    const tokenizer = await BertTokenizer.fromDirectory(dir);
    assert.equal(tokenizer.flavor, "slow");
    assert.deepEqual(tokenizer.encode("Cat cat", { maxLength: 5 }), [2, 4, 5, 3, 0]);

    await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify({ do_lower_case: "no" }));
    await assert.rejects(() => BertTokenizer.fromDirectory(dir), /tokenizer_config\.json do_lower_case .*"no"/);
    await Deno.remove(`${dir}/vocab.txt`);
    await assert.rejects(() => BertTokenizer.fromDirectory(dir), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const fromJson = await BertTokenizer.fromDirectory(new URL("ldm-text2im/tokenizer/", FIXTURES));
  assert.equal(fromJson.flavor, "fast");
});
