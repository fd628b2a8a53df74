// The tokenizer conformance corpus: >= 200 KB of text built deterministically
// (fixed seed, no downloads) from the hand-written pools in corpus_text.mjs
// plus generated adversarial strings.
//
//   corpusParagraphs()  -> array of paragraphs (each a separate test text)
//   corpusPieces()      -> the same text regrouped into multi-KB pieces
//   node corpus.mjs OUT -> writes the paragraphs joined by "\n\n" to OUT
//                          (the input of `silica tokenize --bench`)
//
// The text is valid UTF-8 by construction (JavaScript strings, no lone
// surrogates), since the reference tokenizer takes JavaScript strings;
// invalid UTF-8 is covered by the unit tests instead. It holds no U+FEFF:
// JavaScript's \s matches it, Unicode's White_Space (PCRE2, and Oniguruma
// in Hugging Face's Rust tokenizers) does not, and Silica follows the latter.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as T from "./corpus_text.mjs";

const SEED = 0x5111ca;
const TARGET_BYTES = 210 * 1024;

function mulberry32(a) {
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function build() {
  const rnd = mulberry32(SEED);
  const int = (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1)); // inclusive
  const pick = (a) => a[Math.floor(rnd() * a.length)];
  const times = (n, f) => Array.from({ length: n }, f);
  const cp = (lo, hi) => String.fromCodePoint(int(lo, hi));

  const PROSE = [
    { pool: T.ENGLISH, sep: " " },
    { pool: T.CHINESE, sep: "" },
    { pool: T.JAPANESE, sep: "" },
    { pool: T.KOREAN, sep: " " },
    { pool: T.RUSSIAN, sep: " " },
    { pool: T.ARABIC, sep: " " },
    { pool: T.OTHER, sep: " " },
  ];
  const ALL_SENTENCES = PROSE.flatMap((p) => p.pool);
  const CODE = Object.values(T.CODE);

  // character ranges of many scripts, for words without spaces
  const SCRIPTS = [
    [0x61, 0x7a], [0x41, 0x5a], [0x30, 0x39], [0xe0, 0xff], [0x100, 0x17f], [0x391, 0x3a9], [0x3b1, 0x3c9],
    [0x410, 0x44f], [0x5d0, 0x5ea], [0x627, 0x64a], [0x905, 0x939], [0xe01, 0xe2e], [0x3041, 0x3093],
    [0x30a1, 0x30f6], [0x4e00, 0x9fa5], [0xac00, 0xd7a3], [0xff10, 0xff19], [0xff21, 0xff3a], [0x21, 0x2f],
    [0x3a, 0x40], [0x2010, 0x2027], [0x3001, 0x3011], [0x1f300, 0x1f5ff], [0x1f600, 0x1f64f], [0x2600, 0x26ff],
    [0x660, 0x669], [0x966, 0x96f], [0x2160, 0x2182], [0xb2, 0xb3], [0x20a0, 0x20bf],
  ];
  const COMBINING = [[0x300, 0x36f], [0x1ab0, 0x1abe], [0x20d0, 0x20f0], [0x64b, 0x652], [0x93c, 0x94d]];
  const WS = [" ", " ", "  ", "   ", "\t", "\t\t", " \t", "\n", "\n\n", "\r\n", "\r\n\r\n", "\r", " \n ",
    "\u00a0", "\u3000", "\u2003", "\u2009", "\u202f", "\v", "\f", "\u0085", "\u1680", "\u2028", "        ", "\n    ", "\t\n\t"];

  const randomNumber = () => {
    switch (int(0, 14)) {
      case 0: return String(int(0, 9));
      case 1: return String(int(10, 99999));
      case 2: return times(int(6, 40), () => int(0, 9)).join("");
      case 3: return `${int(0, 999)}.${times(int(1, 8), () => int(0, 9)).join("")}`;
      case 4: return `-${int(1, 100000)}`;
      case 5: return int(1, 999) + "," + times(int(1, 4), () => String(int(0, 999)).padStart(3, "0")).join(",");
      case 6: return `${int(1, 9)}.${int(0, 99)}e${pick(["-", "+", ""])}${int(1, 300)}`;
      case 7: return `0x${int(0, 0xffffffff).toString(16).toUpperCase()}`;
      case 8: return `${int(1990, 2030)}-${String(int(1, 12)).padStart(2, "0")}-${String(int(1, 28)).padStart(2, "0")}T${String(int(0, 23)).padStart(2, "0")}:${String(int(0, 59)).padStart(2, "0")}:00Z`;
      case 9: return `v${int(0, 20)}.${int(0, 99)}.${int(0, 999)}`;
      case 10: return `+1 (${int(200, 999)}) ${int(200, 999)}-${String(int(0, 9999)).padStart(4, "0")}`;
      case 11: return times(int(1, 6), () => String.fromCodePoint(0xff10 + int(0, 9))).join("");
      case 12: return times(int(1, 6), () => String.fromCodePoint(0x660 + int(0, 9))).join("");
      case 13: return pick(["½", "¾", "x²", "10³", "Ⅻ", "ⅷ", "①②③", "𝟙𝟚𝟛", "१२३", "๑๒๓", "1 234 567", "3,14"]);
      default: return `${int(1, 100)}%`;
    }
  };

  const prose = () => {
    const p = pick(PROSE);
    return times(int(2, 7), () => pick(p.pool)).join(p.sep);
  };
  const mixed = () => times(int(2, 8), () => pick(ALL_SENTENCES)).join(pick([" ", "", "\n", " — "]));
  const code = () => {
    let c = pick(CODE);
    switch (int(0, 4)) {
      case 0: c = c.replace(/\n/g, "\r\n"); break;
      case 1: c = c.replace(/^( {4})+/gm, (m) => "\t".repeat(m.length / 4)); break;
      case 2: c = c.replace(/\n/g, () => pick([" \n", "\n", "\t\n", "   \n"])); break;
      case 3: {
        const lines = c.split("\n");
        const a = int(0, lines.length - 1);
        c = lines.slice(a, a + int(3, 12)).join("\n");
        break;
      }
      default: break;
    }
    return c;
  };
  const numbers = () => times(int(5, 30), randomNumber).join(pick([" ", ", ", "\n", "\t", "; ", ""]));
  const whitespace = () => times(int(5, 25), () => pick([pick(ALL_SENTENCES).split(" ")[0], randomNumber(), pick(T.EMOJI), "x"])).map((w) => w + pick(WS)).join("");
  const emoji = () =>
    times(int(5, 40), () => (rnd() < 0.3 ? pick(["hi", "ok", "好", "はい", "да", " ", "!", "\n"]) : pick(T.EMOJI))).join(
      rnd() < 0.5 ? "" : " ",
    );
  const adversarial = () => {
    switch (int(0, 13)) {
      case 0: return times(int(50, 3000), () => int(0, 9)).join("");
      case 1: return pick(["1", "9", "0", "12"]).repeat(int(50, 1500));
      case 2: // letters with stacks of combining marks
        return times(int(5, 60), () => cp(0x61, 0x7a) + times(int(1, 6), () => { const r = pick(COMBINING); return cp(r[0], r[1]); }).join("")).join(pick(["", " "]));
      case 3: // decomposed (NFD) accents and Hangul jamo
        return pick(["Cafe\u0301 na\u0131\u0308ve re\u0301sume\u0301 A\u030Angstro\u0308m", "e\u0301e\u0301e\u0301", "\u1112\u1161\u11AB\u1100\u1173\u11AF", "Zoe\u0308 Bjo\u0308rk", "n\u0303 N\u0303 \u00f1", "\u0300\u0301 leading marks", "o\u0308\u0304 u\u031B\u0323"]).repeat(int(1, 4));
      case 4: return times(int(1, 20), () => pick(T.SPECIAL_LIKE)).join(pick(["", " ", "\n", "x"]));
      case 5: return `${pick(["abc", "Hello", "数字", " "])}${pick(T.SPECIAL_LIKE)}${pick(["def", "world", "", "\n"])}`;
      case 6: return times(int(500, 12000), () => cp(0x61, 0x7a)).join("");
      case 7: return pick(["ab", "xyz", "the", "a", "é", "Ж", "中", "😀", "𝓐", "ﷺ"]).repeat(int(100, 3000));
      case 8: return times(int(20, 400), () => { const r = pick(SCRIPTS); return cp(r[0], r[1]); }).join("");
      case 9: return pick(["!", ".", "-", "=", "'", "\"", "?!", "...", "—", "、", "。", "*", "#", "/", "\\"]).repeat(int(2, 500));
      case 10: return times(int(3, 30), () => pick(["'s", "'S", "'t", "'re", "'RE", "'Ve", "'m", "'ll", "'LL", "'d", "'D", "'ſ", "'x", "n't", "'", "’s", "''"]) + pick(["", " ", "a", "1"])).join(pick(["", " ", "word"]));
      case 11: return times(int(5, 40), () => String.fromCodePoint(pick([0x1, 0x7, 0x8, 0x1b, 0x7f, 0x80 + int(0, 31), 0xad, 0x200b, 0x200c, 0x200d, 0x2060, 0x2028, 0x2029, 0xe000, 0xf8ff, 0xfffd, 0xfffe, 0xffff, 0x10ffff, 0x1d11e, 0x1f9d1]))).join(pick(["", "a", " "]));
      case 12: return times(int(100, 2000), () => pick("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")).join("") + "==";
      default: return `${" ".repeat(int(1, 40))}${pick(ALL_SENTENCES)}${pick(WS).repeat(int(1, 10))}`;
    }
  };

  const KINDS = [
    [prose, 20], [mixed, 10], [code, 10], [numbers, 6], [whitespace, 8], [emoji, 5], [adversarial, 14],
  ];
  const total = KINDS.reduce((s, k) => s + k[1], 0);
  const paras = [];
  // every hand-written sentence and code sample appears at least once
  for (const p of PROSE) paras.push(p.pool.join(p.sep));
  for (const c of CODE) paras.push(c);
  paras.push(T.EMOJI.join(" "), T.EMOJI.join(""), T.SPECIAL_LIKE.join(" "));
  let bytes = paras.reduce((s, p) => s + Buffer.byteLength(p), 0);
  while (bytes < TARGET_BYTES) {
    let r = rnd() * total, f = null;
    for (const [g, w] of KINDS) if ((r -= w) < 0 && !f) f = g;
    const p = (f ?? prose)();
    if (p.length === 0) continue;
    paras.push(p);
    bytes += Buffer.byteLength(p);
  }
  return paras;
}

let cache = null;
export function corpusParagraphs() {
  cache ??= build();
  return cache.slice();
}

// Consecutive paragraphs joined by "\n\n" into pieces of about `size` bytes.
export function corpusPieces(size = 8192) {
  const out = [];
  let cur = [];
  let n = 0;
  for (const p of corpusParagraphs()) {
    cur.push(p);
    n += Buffer.byteLength(p) + 2;
    if (n >= size) {
      out.push(cur.join("\n\n"));
      cur = [];
      n = 0;
    }
  }
  if (cur.length) out.push(cur.join("\n\n"));
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const text = corpusParagraphs().join("\n\n");
  if (process.argv[2]) writeFileSync(process.argv[2], text);
  else process.stdout.write(text);
  console.error(`${corpusParagraphs().length} paragraphs, ${Buffer.byteLength(text)} bytes`);
}
