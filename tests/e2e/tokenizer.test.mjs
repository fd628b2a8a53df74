// Tokenizer conformance: `silica tokenize` against the reference tokenizers
// (@lenml/tokenizers, a port of Hugging Face's), token for token.
//
// The corpus (tok/corpus.mjs: >= 200 KB, built deterministically from
// hand-written text in tok/corpus_text.mjs) mixes English, Chinese, Japanese,
// Korean, Russian, Arabic, emoji/ZWJ sequences, code in several languages,
// numbers, whitespace runs, tabs/CRLF and adversarial strings. It is compared
// per paragraph and in multi-KB pieces for Qwen3, Llama 3.1, DeepSeek V3,
// Llama 2 and gpt-oss (o200k harmony); Qwen2.5 and InternLM2 get the short
// list below. Where the
// reference round-trips a text (decode(encode(x)) == x), so must Silica.
// Also: NFC for Qwen (decomposed accents), and the reference engine's ids in
// the shared fixtures' CASES.tsv when those files are present.
//
// Silica reads each Hugging Face tokenizer through its own importer
// (`--hf DIR`: tokenizer.json -> GGUF tokenizer keys -> tokenizer), so this
// also checks the importer. The reference is asked for no added BOS/EOS;
// special-token text is parsed on both sides (--special), as the reference
// always does. Each reference tokenizer is loaded once and every text goes
// through one `silica tokenize --null-separated` call per model, which runs
// while the reference loads.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { referenceTokenizer } from "./lib/reftok.mjs";
import { describeMismatches, silicaDetokenize, silicaDetokenizeAsync, silicaTokenize, silicaTokenizeAsync, assertRoundTrips } from "./lib/tokcli.mjs";
import { corpusParagraphs, corpusPieces } from "./tok/corpus.mjs";

const BIN = process.env.SILICA_BIN;
const require = createRequire(import.meta.url);
const FIXTURES = "/work/shared/fixtures";

const longLine = Array.from({ length: 400 }, (_, i) => `word${i} 数字${i * 7919} `).join("") + "end";
const SHORT = [
  "Hello, world!",
  "The quick brown fox jumps over the lazy dog.",
  " leading space",
  "  two leading spaces and trailing   ",
  "I'm sure you've seen it; they'll say we'd DONE it. IT'S OK'S.",
  "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
  "for (int i = 0; i < 10; ++i) { printf(\"%d\\n\", i); }",
  "北京是中国的首都。東京は日本の首都です。서울은 한국의 수도입니다.",
  "Emoji: 😀🎉👍🏽 family: 👨‍👩‍👧‍👦 flags: 🇫🇷🇯🇵",
  "Numbers: 1 12 123 1234 12345 123456 1234567 3.14159 -42 1,000,000 0x1F",
  "99999999999999999999999999999999",
  "tabs\tand\t\ttabs\nnew\n\nlines\r\nwindows\r\n\r\nend",
  "     \n\n\n      ",
  "Accents: café naïve résumé Ångström Øresund São Paulo Ελληνικά Русский",
  "Special-looking: <|im_start|>user\nhi<|im_end|> <s> </s> <|begin_of_text|> <think>x</think>",
  "<|endoftext|><|endoftext|>",
  "<|start|>assistant<|channel|>analysis<|message|>Think.<|end|><|start|>assistant<|channel|>final<|message|>Done<|return|>",
  "<|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{\"city\":\"Paris\"}<|call|>",
  "Mixed: HTTP/1.1 200 OK — “quotes” ‘single’ … ellipsis ™ © ®",
  "URL https://example.com/path?q=1&r=2#frag and email a.b@c.io",
  "العربية עברית हिन्दी ไทย",
  "a",
  longLine,
];
// Decomposed (NFD) text: Qwen's tokenizer.json normalises to NFC first.
const DECOMPOSED = [
  "Cafe\u0301 na\u0131\u0308ve re\u0301sume\u0301 A\u030Angstro\u0308m",
  "e\u0301",
  "\u1112\u1161\u11AB\u1100\u1173\u11AF \uD55C + \u11AB",
  "Zoe\u0308 Bjo\u0308rk, Mu\u0308nchen, Sa\u0303o Paulo, Ho\u0302\u0323 Chi\u0301 Minh",
  "a\u0323\u0302 a\u0302\u0323 q\u0307\u0323 \u212B \u2126 \u0958 \u0B47\u0B3E \uFB2C",
  "\u0300leading mark, e\u0301<|im_end|>e\u0301",
];

const FULL = ["qwen3", "llama3_1", "deepseek_v3", "llama2", "gptoss"];
const MODELS = ["qwen3", "qwen2_5", "llama3_1", "llama2", "deepseek_v3", "internlm2", "gptoss"];

function modelDir(name) {
  // the package's entry point lies in dist/; tokenizer.json in models/
  let dir = path.dirname(require.resolve(`@lenml/tokenizer-${name}`));
  while (!existsSync(path.join(dir, "models", "tokenizer.json")) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return path.join(dir, "models");
}

// How a mismatch report shows the reference's ids: each id's text, and the
// last 60 characters of the text before the first difference.
const asText = (ref) => ({
  pieces: (ids) => ids.map((id) => ref.decode([id], { skip_special_tokens: false })),
  context: (w, k) => `context: ...${JSON.stringify((k ? ref.decode(w.slice(0, k), { skip_special_tokens: false }) : "").slice(-60))}`,
});

const skip = !BIN || !existsSync(BIN) ? "SILICA_BIN not built" : false;

for (const name of MODELS) {
  const full = FULL.includes(name);
  test(`tokenizer ${name}: ids equal the reference${full ? " on the 200 KB corpus" : ""}, decode(encode(x)) == x`, { skip }, async () => {
    const extra = name === "qwen3" ? [...DECOMPOSED, ...DECOMPOSED.map((t) => t.normalize("NFC"))] : [];
    const texts = [...SHORT, ...extra, ...(full ? [...corpusParagraphs(), ...corpusPieces(8192)] : [])];
    if (full) {
      const bytes = corpusParagraphs().reduce((s, p) => s + Buffer.byteLength(p), 0);
      assert.ok(bytes >= 200 * 1024, `corpus is ${bytes} bytes`);
    }
    const dir = modelDir(name);
    const oursP = silicaTokenizeAsync(["--hf", dir, "--special", "--no-add-special"], texts);
    oursP.catch(() => {});
    const ref = referenceTokenizer(name);
    const want = texts.map((t) => Array.from(ref.encode(t, { add_special_tokens: false })));
    // Silica decodes the reference's ids (equal to its own once the check below passes)
    const backP = silicaDetokenizeAsync(["--hf", dir], want);
    backP.catch(() => {});
    const roundTrips = want.map(
      (ids, i) => (ids.length ? ref.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }) : "") === texts[i],
    );
    const ours = await oursP;
    assert.equal(ours.length, texts.length);
    const report = describeMismatches(texts, want, ours, name, asText(ref));
    assert.equal(report, "", report);
    // Qwen normalises to NFC: a decomposed text and its composed form encode alike
    for (let i = 0; i < extra.length / 2; i++)
      assert.deepEqual(ours[SHORT.length + i], ours[SHORT.length + DECOMPOSED.length + i], `NFD #${i} vs its NFC form`);

    const back = await backP;
    assert.equal(back.length, texts.length);
    const checked = assertRoundTrips(name, texts, roundTrips, back);
    if (full) assert.ok(checked > texts.length * 0.9, `${name}: only ${checked}/${texts.length} texts round-trip in the reference`);
  });
}

test("tokenizer: NFC only where tokenizer.json asks; special text needs --special; BOS flags; 1 MB words", { skip }, async () => {
  const q3 = modelDir("qwen3");
  const big = "a".repeat(1 << 20);
  const [l3nfc, plain, special, l3bos, q3bos, l2bos, bigIds] = await Promise.all([
    // Llama 3.1 has no normalizer: the decomposed form stays distinct
    silicaTokenizeAsync(["--hf", modelDir("llama3_1"), "--no-add-special"], ["e\u0301", "\u00e9"]),
    silicaTokenizeAsync(["--hf", q3, "--no-add-special"], ["<|im_start|>user"]),
    silicaTokenizeAsync(["--hf", q3, "--special", "--no-add-special"], ["<|im_start|>user"]),
    silicaTokenizeAsync(["--hf", modelDir("llama3_1")], ["hi"]),
    silicaTokenizeAsync(["--hf", q3], ["hi"]),
    silicaTokenizeAsync(["--hf", modelDir("llama2")], ["hi"]),
    silicaTokenizeAsync(["--hf", q3, "--no-add-special"], [big]),
  ]);
  assert.notDeepEqual(l3nfc[0], l3nfc[1]);
  assert.ok(!plain[0].includes(151644), "control token injected from plain text");
  assert.deepEqual(special[0], [151644, 872]);
  assert.equal(l3bos[0][0], 128000);
  assert.deepEqual(q3bos[0], [6023]);
  assert.equal(l2bos[0][0], 1);
  const ids = bigIds[0];
  assert.ok(ids.length > 0 && ids.length < big.length);
  const [back] = silicaDetokenize(["--hf", q3], [ids]);
  assert.equal(back, big);
});

test("tokenizer: fixture GGUFs reproduce the reference engine's ids (CASES.tsv)", { skip }, (t) => {
  const cases = path.join(FIXTURES, "CASES.tsv");
  if (!existsSync(cases)) {
    t.skip("fixtures absent");
    return;
  }
  for (const line of readFileSync(cases, "utf8").split("\n")) {
    const cols = line.split("\t");
    if (cols.length < 3) continue;
    const [model, prompt, want] = cols;
    const text = readFileSync(path.join(FIXTURES, prompt), "utf8");
    const [got] = silicaTokenize(["--model", path.join(FIXTURES, model), "--no-add-special"], [text]);
    assert.deepEqual(got, want.trim().split(" ").map(Number), `${model} ${prompt}`);
  }
});
