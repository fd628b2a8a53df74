// WordPiece (BERT) and Unigram (XLM-R) conformance: `silica tokenize` and
// `silica detokenize` against the reference tokenizers (@lenml/tokenizers,
// a port of Hugging Face's) on the 200 KB corpus, per paragraph.
//
// No npm package ships a BERT or XLM-R tokenizer.json, so the tokenizers
// are built from the corpus by tests/data/tokenizer/make.mjs (committed
// output: bert-uncased, bert-cased, xlmr-unigram) and loaded into the
// reference library with TokenizerLoader.fromPreTrained. Silica reads the
// same folders through its importer (--hf DIR: tokenizer.json -> GGUF
// tokenizer keys -> tokenizer). Decoding is compared with the reference's
// decode (lowercasing and accent stripping do not round-trip); where the
// reference round-trips a text, so must Silica. A model made by
// `silica mkmodel --tokenizer DIR` (the GGUF path) encodes like --hf DIR.
//
// Where the JavaScript port departs from Hugging Face's Rust tokenizers, the
// texts that show it are left out and listed in JS_DIVERGES below; Silica
// follows the Rust library there.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describeMismatches, runSilica, silicaDetokenizeAsync, silicaTokenizeAsync, textDiff } from "./lib/tokcli.mjs";
import { corpusParagraphs } from "./tok/corpus.mjs";

const BIN = process.env.SILICA_BIN;
const require = createRequire(import.meta.url);
const DATA = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "data", "tokenizer");

// Texts where the JavaScript port is known to differ from the Rust library
// (see docs/tokenizer.md, Limits): predicates on the text, per model kind.
const JS_DIVERGES = {
  // BertNormalizer's clean_text drops "other" characters: Rust's is_other()
  // takes Cc, Cf, Co, Cs and Cn (unassigned, noncharacters such as U+FFFF);
  // the port's test has no Cn
  bert: [(t) => /\p{Cn}/u.test(t)],
  unigram: [],
};

const SHORT = [
  "Hello, world!",
  "The quick brown fox jumps over the lazy dog.",
  " leading space",
  "  two leading spaces and trailing   ",
  "I'm sure you've seen it; they'll say we'd DONE it. IT'S OK'S.",
  "北京是中国的首都。東京は日本の首都です。서울은 한국의 수도입니다.",
  "Accents: café naïve résumé Ångström Øresund São Paulo Ελληνικά Русский",
  "Special-looking: [CLS] [SEP] [MASK] <s> </s> <mask> [UNK] <unk>",
  "Mixed: HTTP/1.1 200 OK — “quotes” ‘single’ … ellipsis ™ © ®",
  "tabs\tand\t\ttabs\nnew\n\nlines\r\nwindows\r\n\r\nend",
  "     \n\n\n      ",
  "a",
  "x".repeat(100),
  "x".repeat(101),
  "é".repeat(101),
  "Emoji: 😀🎉👍🏽 ☃☃☃ unknown runs",
];

function referenceTokenizer(dir) {
  const { TokenizerLoader } = require("@lenml/tokenizers");
  const tokenizerJSON = JSON.parse(readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
  const tokenizerConfig = JSON.parse(readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
  return TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
}

// How a mismatch report shows the reference's ids: each id's vocabulary
// piece, and the six pieces before the first difference.
const asPieces = (ref) => ({
  pieces: (ids) => ids.map((id) => ref.model.vocab[id]),
  context: (w, k) => `before: ${JSON.stringify(w.slice(Math.max(0, k - 6), k).map((id) => ref.model.vocab[id]))}`,
});

const skip = !BIN || !existsSync(BIN) ? "SILICA_BIN not built" : false;

const MODELS = [
  { name: "bert-uncased", kind: "bert" },
  { name: "bert-cased", kind: "bert" },
  { name: "xlmr-unigram", kind: "unigram" },
];

for (const { name, kind } of MODELS) {
  test(`tokenizer ${name}: ids equal the reference on the 200 KB corpus, decode equals the reference's`, { skip }, async () => {
    const dir = path.join(DATA, name);
    const all = [...SHORT, ...corpusParagraphs()];
    const texts = all.filter((t) => !JS_DIVERGES[kind].some((f) => f(t)));
    assert.ok(texts.length > all.length * 0.95, `${all.length - texts.length} texts left out`);
    const oursP = silicaTokenizeAsync(["--hf", dir, "--special", "--no-add-special"], texts);
    oursP.catch(() => {});
    const ref = referenceTokenizer(dir);
    const want = texts.map((t) => Array.from(ref.encode(t, { add_special_tokens: false })));
    const backP = silicaDetokenizeAsync(["--hf", dir, "--no-special"], want);
    backP.catch(() => {});
    const ours = await oursP;
    assert.equal(ours.length, texts.length);
    const report = describeMismatches(texts, want, ours, name, asPieces(ref));
    assert.equal(report, "", report);

    // the reference adds [CLS] ... [SEP] / <s> ... </s>; so must Silica
    const [withSpecial] = await silicaTokenizeAsync(["--hf", dir], [SHORT[0]]);
    assert.deepEqual(withSpecial, Array.from(ref.encode(SHORT[0])));

    const back = await backP;
    assert.equal(back.length, texts.length);
    let roundTrips = 0;
    texts.forEach((text, i) => {
      const refText = want[i].length ? ref.decode(want[i], { skip_special_tokens: true }) : "";
      if (refText === text) roundTrips++;
      if (back[i] !== refText) assert.fail(`${name} decode of text #${i} differs from the reference's ${textDiff(refText, back[i])}`);
    });
    if (name === "bert-cased") assert.ok(roundTrips > 0);

    // the same tokenizer written into a model file by mkmodel
    const tmp = mkdtempSync(path.join(os.tmpdir(), "silica-wpu-"));
    try {
      const gguf = path.join(tmp, "m.gguf");
      await runSilica(["mkmodel", "--arch", "llama", "--out", gguf, "--embd", "32", "--layers", "1", "--heads", "2",
        "--kv-heads", "2", "--ffn", "64", "--tokenizer", dir], "");
      const viaModel = await silicaTokenizeAsync(["--model", gguf, "--special", "--no-add-special"], SHORT);
      assert.deepEqual(viaModel, ours.slice(0, SHORT.length));
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
}
