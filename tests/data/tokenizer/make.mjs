// Builds the WordPiece and Unigram test tokenizers in this folder from the
// tokenizer conformance corpus (tests/e2e/tok/corpus.mjs), deterministically
// and without downloads:
//
//   bert-uncased/  BERT-style WordPiece: BertNormalizer (clean_text,
//                  handle_chinese_chars, lowercase, strip_accents follows
//                  lowercase), BertPreTokenizer, "##" continuations,
//                  [PAD] [unused*] [UNK] [CLS] [SEP] [MASK] at BERT's ids,
//                  TemplateProcessing [CLS] $A [SEP], WordPiece decoder
//  bert-cased/    the same with lowercase false (accents kept)
//  xlmr-unigram/  XLM-R-style Unigram: <s> <pad> </s> <unk> first, pieces
//                 with log-probability scores, Metaspace (▁, prefix space,
//                 prepend_scheme always), <mask> added last, <s> $A </s>
//
// The vocabularies are what a trainer might plausibly have kept: the
// corpus's frequent words, frequent prefixes and "##" / inner pieces of the
// other words, and single characters seen at least twice (rarer ones, most
// emoji among them, become [UNK] / <unk>). Scores are float32 values, as
// SentencePiece stores them.
//
//   node tests/data/tokenizer/make.mjs      (rewrites the three folders)
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { corpusParagraphs } from "../../e2e/tok/corpus.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PUNCT = "\\p{P}\\u0021-\\u002F\\u003A-\\u0040\\u005B-\\u0060\\u007B-\\u007E";
const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0); // code-unit order, locale-free
const byCount = (m) => [...m].sort((a, b) => b[1] - a[1] || cmp(a[0], b[0]));
const inc = (m, k, n = 1) => m.set(k, (m.get(k) ?? 0) + n);
const isCjk = (cp) =>
  (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0x20000 && cp <= 0x2a6df) ||
  (cp >= 0x2a700 && cp <= 0x2ceaf) || (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f);

// ------------------------------------------------------------- WordPiece --

function bertWords(text, lowercase) {
  let t = "";
  for (const ch of text) {
    const cp = ch.codePointAt(0);
    if (cp === 0 || cp === 0xfffd || /^[\p{Cc}\p{Cf}\p{Co}\p{Cs}]$/u.test(ch) && !/[\t\n\r]/.test(ch)) continue;
    t += /^\s$/u.test(ch) ? " " : isCjk(cp) ? ` ${ch} ` : ch;
  }
  if (lowercase) t = t.toLowerCase().normalize("NFD").replace(/\p{Mn}/gu, "");
  return t.match(new RegExp(`[^\\s${PUNCT}]+|[${PUNCT}]`, "gu")) ?? [];
}

function wordpieceVocab(paras, lowercase) {
  const words = new Map();
  const chars = new Map();
  for (const p of paras) {
    for (const w of bertWords(p, lowercase)) {
      inc(words, w);
      for (const ch of w) inc(chars, ch);
    }
  }
  const vocab = ["[PAD]"];
  for (let i = 0; vocab.length < 100; i++) vocab.push(`[unused${i}]`);
  vocab.push("[UNK]", "[CLS]", "[SEP]", "[MASK]");
  const have = new Set(vocab);
  // GGUF writes "##x" as "x" and "x" as "\u2581x" (llama.cpp's converter), so a
  // piece holding U+2581 could collide with another: like real BERT
  // vocabularies, this one has none
  const add = (s) => {
    if (!have.has(s) && !s.includes("\u2581")) have.add(s), vocab.push(s);
  };
  const wordChars = new Set();
  for (const [ch, n] of byCount(chars)) {
    if (n < 2) continue;
    add(ch);
    if (!new RegExp(`^[${PUNCT}]$`, "u").test(ch) && !isCjk(ch.codePointAt(0))) wordChars.add(ch);
  }
  for (const ch of [...wordChars].sort(cmp)) add("##" + ch);
  let kept = 0;
  const wholeWords = new Set();
  for (const [w, n] of byCount(words)) {
    const len = [...w].length;
    if (n < 2 || len < 2 || len > 18 || kept >= 1800) continue;
    add(w), wholeWords.add(w), kept++;
  }
  // pieces of the words left out: frequent prefixes and "##" continuations
  const pre = new Map();
  const suf = new Map();
  for (const [w, n] of words) {
    if (wholeWords.has(w)) continue;
    const cs = [...w];
    if (cs.length < 4 || cs.length > 40) continue;
    for (let k = 2; k <= Math.min(6, cs.length - 1); k++) inc(pre, cs.slice(0, k).join(""), n);
    for (let i = 1; i < cs.length - 1; i++)
      for (let k = 2; k <= 5 && i + k <= cs.length; k++) inc(suf, "##" + cs.slice(i, i + k).join(""), n);
  }
  let np = 0;
  for (const [s, n] of byCount(pre)) if (n >= 3 && np < 700 && !have.has(s)) add(s), np++;
  let ns = 0;
  for (const [s, n] of byCount(suf)) if (n >= 3 && ns < 900 && !have.has(s)) add(s), ns++;
  return vocab;
}

function bertFiles(paras, lowercase) {
  const vocab = wordpieceVocab(paras, lowercase);
  const special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
  const tj = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: special.map((s) => ({
      id: vocab.indexOf(s), content: s, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: { type: "BertNormalizer", clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "[CLS]", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "[SEP]", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: "[CLS]", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "[SEP]", type_id: 0 } },
        { Sequence: { id: "B", type_id: 1 } }, { SpecialToken: { id: "[SEP]", type_id: 1 } },
      ],
      special_tokens: {
        "[CLS]": { id: "[CLS]", ids: [101], tokens: ["[CLS]"] },
        "[SEP]": { id: "[SEP]", ids: [102], tokens: ["[SEP]"] },
      },
    },
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: {
      type: "WordPiece",
      unk_token: "[UNK]",
      continuing_subword_prefix: "##",
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(vocab.map((s, i) => [s, i])),
    },
  };
  const cfg = {
    tokenizer_class: "BertTokenizer",
    do_lower_case: lowercase,
    tokenize_chinese_chars: true,
    strip_accents: null,
    clean_up_tokenization_spaces: true,
    model_max_length: 512,
    unk_token: "[UNK]",
    sep_token: "[SEP]",
    pad_token: "[PAD]",
    cls_token: "[CLS]",
    mask_token: "[MASK]",
  };
  return { tj, cfg, n: vocab.length };
}

// --------------------------------------------------------------- Unigram --

function unigramFiles(paras) {
  const words = new Map();
  const chars = new Map();
  for (const p of paras) {
    let t = p.replaceAll(" ", "\u2581");
    if (!t.startsWith("\u2581")) t = "\u2581" + t;
    for (const w of t.split(/(?=\u2581)/u)) {
      inc(words, w);
      for (const ch of w) inc(chars, ch);
    }
  }
  const subs = new Map();
  for (const [w, n] of words) {
    const cs = [...w];
    if (cs.length > 40) continue;
    for (let i = 0; i < cs.length; i++)
      for (let k = 2; k <= 6 && i + k <= cs.length; k++) {
        const s = cs.slice(i, i + k).join("");
        if (s.indexOf("\u2581", 1) < 0) inc(subs, s, n);
      }
  }
  const pieces = new Map(); // piece -> count
  for (const [ch, n] of chars) if (n >= 2) pieces.set(ch, n);
  pieces.set("\u2581", chars.get("\u2581") ?? 1);
  let kw = 0;
  for (const [w, n] of byCount(words)) {
    const len = [...w].length;
    if (n >= 2 && len >= 2 && len <= 16 && kw < 1500) pieces.set(w, n), kw++;
  }
  let ks = 0;
  for (const [s, n] of [...subs].sort((a, b) => b[1] * [...b[0]].length - a[1] * [...a[0]].length || cmp(a[0], b[0]))) {
    if (n >= 3 && ks < 1600 && !pieces.has(s)) pieces.set(s, n), ks++;
  }
  let total = 0;
  for (const n of pieces.values()) total += n;
  // log-probabilities as float32; a piece's length lowers it a little, as
  // EM training does for long rare pieces
  const scored = [...pieces].map(([s, n]) => [s, Math.fround(Math.log(n / total) - 0.05 * [...s].length)]);
  scored.sort((a, b) => b[1] - a[1] || cmp(a[0], b[0]));
  const vocab = [["<s>", 0], ["<pad>", 0], ["</s>", 0], ["<unk>", 0], ...scored, ["<mask>", 0]];
  const mask = vocab.length - 1;
  const sp = (id, content) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const tj = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [sp(0, "<s>"), sp(1, "<pad>"), sp(2, "</s>"), sp(3, "<unk>"), sp(mask, "<mask>")],
    normalizer: null,
    pre_tokenizer: { type: "Metaspace", replacement: "\u2581", add_prefix_space: true, prepend_scheme: "always" },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "</s>", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "</s>", type_id: 0 } },
        { SpecialToken: { id: "</s>", type_id: 0 } }, { Sequence: { id: "B", type_id: 0 } }, { SpecialToken: { id: "</s>", type_id: 0 } },
      ],
      special_tokens: {
        "<s>": { id: "<s>", ids: [0], tokens: ["<s>"] },
        "</s>": { id: "</s>", ids: [2], tokens: ["</s>"] },
      },
    },
    decoder: { type: "Metaspace", replacement: "\u2581", add_prefix_space: true, prepend_scheme: "always" },
    model: { type: "Unigram", unk_id: 3, vocab, byte_fallback: false },
  };
  const cfg = {
    tokenizer_class: "XLMRobertaTokenizer",
    bos_token: "<s>",
    eos_token: "</s>",
    sep_token: "</s>",
    cls_token: "<s>",
    unk_token: "<unk>",
    pad_token: "<pad>",
    mask_token: "<mask>",
    clean_up_tokenization_spaces: true,
    model_max_length: 512,
  };
  return { tj, cfg, n: vocab.length };
}

// ------------------------------------------------------------------ main --

function write(dir, { tj, cfg, n }) {
  const d = path.join(HERE, dir);
  mkdirSync(d, { recursive: true });
  writeFileSync(path.join(d, "tokenizer.json"), JSON.stringify(tj) + "\n");
  writeFileSync(path.join(d, "tokenizer_config.json"), JSON.stringify(cfg, null, 2) + "\n");
  console.log(`${dir}: ${n} tokens`);
}

const paras = corpusParagraphs();
write("bert-uncased", bertFiles(paras, true));
write("bert-cased", bertFiles(paras, false));
write("xlmr-unigram", unigramFiles(paras));
