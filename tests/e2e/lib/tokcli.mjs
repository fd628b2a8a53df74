// `silica tokenize` / `silica detokenize` as the tokenizer conformance tests
// drive them (many texts per call: --null-separated in, one line of ids per
// text out; --lines in, NUL-terminated texts out), and the reports those
// tests print when Silica and the reference disagree, and their round-trip check.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";

const BIN = process.env.SILICA_BIN;

// Runs the binary with input on stdin; resolves to stdout (rejects on failure).
export function runSilica(args, input) {
  return new Promise((resolve, reject) => {
    const p = spawn(BIN, args, { stdio: ["pipe", "pipe", "pipe"] });
    const out = [];
    const err = [];
    p.stdout.on("data", (d) => out.push(d));
    p.stderr.on("data", (d) => err.push(d));
    p.on("error", reject);
    p.on("close", (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new Error(`silica ${args[0]} exited ${code}: ${Buffer.concat(err)}`));
    });
    p.stdin.end(input);
  });
}

// One id list per output line ("" is an empty list).
export const parseIdLines = (out) => {
  const lines = out.toString().split("\n");
  lines.pop();
  return lines.map((l) => (l === "" ? [] : l.split(" ").map(Number)));
};
// NUL-terminated texts.
export const parseTexts = (out) => {
  const parts = out.toString().split("\0");
  parts.pop();
  return parts;
};

const tokenizeArgs = (args) => ["tokenize", ...args, "--null-separated"];
const tokenizeInput = (texts) => Buffer.from(texts.join("\0"));
const detokenizeArgs = (args) => ["detokenize", ...args, "--lines"];
const detokenizeInput = (idLists) => idLists.map((ids) => ids.join(" ")).join("\n") + "\n";

// The ids of each text, in one `silica tokenize` call.
export function silicaTokenize(args, texts) {
  return parseIdLines(execFileSync(BIN, tokenizeArgs(args), { input: tokenizeInput(texts), maxBuffer: 1 << 28 }));
}
export async function silicaTokenizeAsync(args, texts) {
  return parseIdLines(await runSilica(tokenizeArgs(args), tokenizeInput(texts)));
}
// The text of each id list, in one `silica detokenize` call.
export function silicaDetokenize(args, idLists) {
  return parseTexts(execFileSync(BIN, detokenizeArgs(args), { input: detokenizeInput(idLists), maxBuffer: 1 << 28 }));
}
export async function silicaDetokenizeAsync(args, idLists) {
  return parseTexts(await runSilica(detokenizeArgs(args), detokenizeInput(idLists)));
}

// A readable report of the first few texts whose ids differ ("" when none):
// where the first differing token is, what precedes it (context(w, k): one
// line about want's first k ids) and the tokens on both sides, each id shown
// as pieces(ids) gives it.
export function describeMismatches(texts, want, got, label, { pieces, context }) {
  const show = (ids) => JSON.stringify(pieces(ids));
  const lines = [];
  let bad = 0;
  texts.forEach((text, i) => {
    const w = want[i];
    const g = got[i] ?? [];
    if (w.length === g.length && w.every((x, j) => x === g[j])) return;
    if (++bad > 5) return;
    let k = 0;
    while (k < w.length && w[k] === g[k]) k++;
    lines.push(
      `${label} text #${i} (${text.length} chars), first difference at token ${k}\n` +
        `  ${context(w, k)}\n` +
        `  want ${JSON.stringify(w.slice(k, k + 8))} ${show(w.slice(k, k + 8))}\n` +
        `  got  ${JSON.stringify(g.slice(k, k + 8))} ${show(g.slice(k, k + 8))}`,
    );
  });
  if (bad > 5) lines.push(`... ${bad - 5} more mismatching texts`);
  return lines.join("\n");
}

// Where text `got` first departs from `want`, with a little of each around it.
export function textDiff(want, got) {
  let k = 0;
  while (k < want.length && want[k] === got[k]) k++;
  return `at char ${k}: ...${JSON.stringify(want.slice(Math.max(0, k - 40), k + 20))} became ...${JSON.stringify(got.slice(Math.max(0, k - 40), k + 20))}`;
}

// Silica's decoding of the reference's ids (back[i]) gives the text back
// wherever the reference's own decode does (roundTrips[i]); fails naming the
// first text that does not, else returns how many were checked.
export function assertRoundTrips(label, texts, roundTrips, back) {
  let checked = 0;
  texts.forEach((text, i) => {
    if (!roundTrips[i]) return;
    checked++;
    if (back[i] !== text) assert.fail(`${label} round trip of text #${i} differs ${textDiff(text, back[i])}`);
  });
  return checked;
}
