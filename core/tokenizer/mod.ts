/**
 * BERT WordPiece tokenization for LDMBert: {@linkcode BertTokenizer} turns a prompt into the 77 `[CLS] … [SEP] [PAD]…`
 * ids that diffusers' `LDMTextToImagePipeline` feeds its text encoder, exactly as Hugging Face transformers'
 * `BertTokenizer` does (lower-casing, accent stripping, control-character removal, punctuation and CJK splitting,
 * greedy longest-match WordPiece with `##` continuations, `[UNK]` for words over 100 characters).
 *
 * Load it from a `vocab.txt` (transformers' Python "slow" tokenizer), from a `tokenizer.json` (Hugging Face
 * `tokenizers`, the "fast" one) or from a saved tokenizer folder with {@linkcode BertTokenizer.fromDirectory}.
 *
 * @example Tokenize a prompt and build the classifier-free-guidance batch
 * ```ts
 * import { BertTokenizer } from "@ldm/core/tokenizer";
 * const tokenizer = BertTokenizer.fromVocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "red", "circle"].join("\n"));
 * console.log(tokenizer.tokenize("A red circle")); // ["a", "red", "circle"]
 * const batch = tokenizer.encodeBatch(["", "A red circle"]); // { int64: BigInt64Array(154), shape: [2, 77] }
 * console.log(batch.shape, batch.int64.slice(77, 82)); // [2, 77] [2n, 4n, 5n, 6n, 3n]
 * ```
 *
 * @module
 */
export { BertTokenizer, DEFAULT_MAX_LENGTH } from "./bert_tokenizer.ts";
export type {
  AddedTokenSpec,
  BertTokenizerFlavor,
  BertTokenizerOptions,
  EncodedBatch,
  EncodeOptions,
} from "./bert_tokenizer.ts";
