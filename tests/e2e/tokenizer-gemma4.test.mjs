// Gemma 4's tokenizer (tokenizer.ggml.model "gemma4") against the reference
// tokenizer (@lenml/tokenizers, a port of Hugging Face's), token for token.
//
// No npm package ships Gemma 4's tokenizer.json, so this file builds one of
// the same shape from the corpus (deterministic, in memory): a BPE model with
// byte_fallback over raw UTF-8, spaces as "▁" through a Metaspace
// pre-tokenizer that prepends nothing and does not split (prepend_scheme
// "never", split false), so merges run across words; <pad> <eos> <bos> <unk>
// and two turn markers as special added tokens; the 256 <0xNN> byte tokens;
// every character seen at least 3 times; 1500 merges learned on the first
// 60 KB of the corpus (never across a newline: the reference engine, which
// Silica follows, cuts the text at newline runs, so a newline pair would
// tell them apart; "\n\n" is one merge). Rarer characters (most emoji, CJK
// and other scripts' less common letters) take the byte fallback.
// Silica reads the folder through its importer (--hf DIR), which must write
// it as "gemma4". Texts: the corpus per paragraph, short cases (leading /
// trailing / runs of spaces, newline runs, tabs, digits, CJK, emoji, special
// tokens inline). Where the reference round-trips a text, so must Silica.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { createRequire } from "node:module";
import path from "node:path";
import { describeMismatches, runSilica, silicaDetokenizeAsync, silicaTokenizeAsync, assertRoundTrips } from "./lib/tokcli.mjs";
import { corpusParagraphs } from "./tok/corpus.mjs";

const BIN = process.env.SILICA_BIN;
const require = createRequire(import.meta.url);
const SP = "\u2581";

const SHORT = [
  "Hello, world!",
  " leading space",
  "  two leading spaces and trailing   ",
  "     ",
  "a\n\nb\n\n\nc\n\n\n\n\nd\n",
  "\n",
  "\n\n",
  "tabs\tand\t\ttabs\r\nwindows\r\n\r\nend",
  "Numbers: 1 12 123 1234 12345 3.14159 -42 1,000,000",
  "北京是中国的首都。東京は日本の首都です。서울은 한국의 수도입니다.",
  "Emoji: 😀🎉👍🏽 family: 👨‍👩‍👧‍👦 flags: 🇫🇷🇯🇵",
  "Accents: café naïve résumé Ångström e\u0301",
  "<bos>hi<start_of_turn>user\nHello there<end_of_turn>\n<start_of_turn>model\n",
  "<eos><eos> x <unk> y",
  "the the the the the the the the",
  "▁already▁marked ▁ text",
  "a",
];

// The tokenizer.json (and tokenizer_config.json) described above.
function buildTokenizer() {
  const paragraphs = corpusParagraphs();
  const specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"];
  const vocab = new Map();
  const add = (s) => {
    if (!vocab.has(s)) vocab.set(s, vocab.size);
  };
  specials.forEach(add);
  for (let b = 0; b < 256; b++) add(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  const counts = new Map();
  for (const p of paragraphs) for (const ch of p.replaceAll(" ", SP)) counts.set(ch, (counts.get(ch) || 0) + 1);
  [...counts.entries()]
    .filter(([, c]) => c >= 3)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .forEach(([ch]) => add(ch));
  add("\n");

  // training lines: newline-free runs of the first 60 KB
  let budget = 60 * 1024;
  const lines = [];
  for (const p of paragraphs) {
    if (budget <= 0) break;
    budget -= p.length;
    for (const l of p.replaceAll(" ", SP).split("\n")) {
      const syms = [...l].filter((c) => vocab.has(c));
      if (syms.length > 1) lines.push(syms);
    }
  }
  const merges = [["\n", "\n"]];
  add("\n\n");
  while (merges.length < 1500) {
    const pc = new Map();
    for (const l of lines)
      for (let i = 0; i + 1 < l.length; i++) {
        const k = l[i] + "\u0000" + l[i + 1];
        pc.set(k, (pc.get(k) || 0) + 1);
      }
    let best = null;
    let bc = 1;
    for (const [k, c] of pc) if (c > bc || (c === bc && best !== null && k < best)) [best, bc] = [k, c];
    if (best === null) break;
    const [a, b] = best.split("\u0000");
    merges.push([a, b]);
    add(a + b);
    for (const l of lines) {
      let w = 0;
      for (let r = 0; r < l.length; r++) {
        if (r + 1 < l.length && l[r] === a && l[r + 1] === b) {
          l[w++] = a + b;
          r++;
        } else {
          l[w++] = l[r];
        }
      }
      l.length = w;
    }
  }
  const tokenizerJSON = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specials.map((s) => ({ id: vocab.get(s), content: s, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: { type: "Metaspace", replacement: SP, prepend_scheme: "never", split: false },
    post_processor: null,
    decoder: {
      type: "Sequence",
      decoders: [{ type: "Replace", pattern: { String: SP }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" }],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab),
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  const tokenizerConfig = {
    tokenizer_class: "GemmaTokenizer",
    bos_token: "<bos>",
    eos_token: "<eos>",
    unk_token: "<unk>",
    pad_token: "<pad>",
    add_bos_token: true,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
  };
  return { tokenizerJSON, tokenizerConfig };
}

const skip = !BIN || !existsSync(BIN) ? "SILICA_BIN not built" : false;

test("tokenizer gemma4: ids equal the reference on the corpus, decode(encode(x)) == x, BOS, mkmodel", { skip }, async (t) => {
  const { tokenizerJSON, tokenizerConfig } = buildTokenizer();
  assert.ok(tokenizerJSON.model.merges.length >= 1000, `${tokenizerJSON.model.merges.length} merges`);
  const dir = mkdtempSync(path.join(os.tmpdir(), "silica-gemma4-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(tokenizerJSON));
  writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify(tokenizerConfig));

  const texts = [...SHORT, ...corpusParagraphs()];
  const oursP = silicaTokenizeAsync(["--hf", dir, "--special", "--no-add-special"], texts);
  oursP.catch(() => {});
  const { TokenizerLoader } = require("@lenml/tokenizers");
  const ref = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
  const want = texts.map((s) => Array.from(ref.encode(s, { add_special_tokens: false })));
  const backP = silicaDetokenizeAsync(["--hf", dir, "--no-special"], want);
  backP.catch(() => {});
  const roundTrips = want.map(
    (ids, i) => (ids.length ? ref.decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false }) : "") === texts[i],
  );
  const ours = await oursP;
  assert.equal(ours.length, texts.length);
  const report = describeMismatches(texts, want, ours, "gemma4", {
    pieces: (ids) => ids.map((id) => ref.model.vocab[id]),
    context: (w, k) => `before: ${JSON.stringify(w.slice(Math.max(0, k - 6), k).map((id) => ref.model.vocab[id]))}`,
  });
  assert.equal(report, "", report);
  // the byte fallback and cross-word merges are exercised
  const byteIds = new Set(Array.from({ length: 256 }, (_, b) => tokenizerJSON.model.vocab[`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`]));
  assert.ok(ours.some((ids) => ids.some((id) => byteIds.has(id))), "no byte-fallback token in the corpus");
  assert.ok(
    Object.keys(tokenizerJSON.model.vocab).some((p) => p.length > 2 && p.slice(1, -1).includes(SP)),
    "no merge across words",
  );

  const back = await backP;
  const checked = assertRoundTrips("gemma4", texts, roundTrips, back);
  assert.ok(checked > texts.length * 0.9, `only ${checked}/${texts.length} texts round-trip in the reference`);

  // BOS from tokenizer_config; no space prefix
  const [withBos] = await silicaTokenizeAsync(["--hf", dir], ["hi there"]);
  assert.deepEqual(withBos, [tokenizerJSON.model.vocab["<bos>"], ...Array.from(ref.encode("hi there", { add_special_tokens: false }))]);

  // the same tokenizer written into a model file (mkmodel: the GGUF path) says "gemma4" and encodes alike
  const gguf = path.join(dir, "m.gguf");
  await runSilica(["mkmodel", "--arch", "llama", "--out", gguf, "--embd", "32", "--layers", "1", "--heads", "2",
    "--kv-heads", "2", "--ffn", "64", "--tokenizer", dir], "");
  const raw = readFileSync(gguf);
  const k = raw.indexOf("tokenizer.ggml.model");
  assert.ok(k > 0 && raw.subarray(k, k + 48).includes("gemma4"), "tokenizer.ggml.model is not gemma4");
  const fromGguf = await silicaTokenizeAsync(["--model", gguf, "--special", "--no-add-special"], texts.slice(0, 40));
  assert.deepEqual(fromGguf, ours.slice(0, 40));
});
