// POST /v1/embeddings and POST /v1/rerank (src/server/embed.c) on tiny
// random-weight BERT models made by `silica mkmodel --arch bert`: an
// embedding model (CLS pooling) with the committed bert-uncased WordPiece
// tokenizer, an XLM-R-style reranker (Unigram tokenizer, one token type)
// and a BERT reranker (two token types: segment ids), served beside a
// chat model; and decoders made by `silica mkmodel --arch qwen3 --pooling`:
// an embedding model (last-token pooling, as Qwen3-Embedding) and a
// reranker in Qwen3-Reranker's layout (rank pooling, the rerank template,
// cls.output = the output rows of "yes" and "no"). Embeddings go through the official openai SDK (which asks
// for base64 and decodes it itself) and fetch; token counts are checked
// against the reference tokenizers (@lenml/tokenizers loading the same
// tokenizer.json). A batched forward pass must give each input the vector
// it gets alone; errors carry OpenAI's status, type, param and code;
// billing charges the input tokens as prompt tokens; a client that leaves
// cancels the work.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { BIN, ROOT, makeModel, metrics, startServer, tinyModel, waitIdle } from "./lib/server.mjs";
import { referenceTokenizer as pkgTokenizer, tokenId } from "./lib/reftok.mjs";

const require = createRequire(import.meta.url);
const TOK = "tests/data/tokenizer";
const DIM = 64;
const CTX = 512;

function referenceTokenizer(name) {
  const { TokenizerLoader } = require("@lenml/tokenizers");
  const dir = path.join(ROOT, TOK, name);
  const tokenizerJSON = JSON.parse(readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
  const tokenizerConfig = JSON.parse(readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
  return TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
}

const bert = referenceTokenizer("bert-uncased");
const xlmr = referenceTokenizer("xlmr-unigram");
const ids = (ref, text, special = true) => Array.from(ref.encode(text, { add_special_tokens: special }));

// Texts of different lengths (a few to ~150 tokens), so that a batch pads.
const TEXTS = [
  "Hello, world!",
  "The quick brown fox jumps over the lazy dog.",
  "Rivers of Europe: the Danube reaches the Black Sea, the Rhine the North Sea and the Rhône the Mediterranean.",
  "a",
  "Accents: café naïve résumé Ångström Øresund São Paulo. ".repeat(6),
  "北京是中国的首都。東京は日本の首都です。",
];
const QUERY = "Which river reaches the Black Sea?";
const DOCS = [
  "The Danube flows through ten countries and reaches the Black Sea in Romania.",
  "Paris is the capital of France.",
  "The Rhine reaches the North Sea in the Netherlands.",
  "Cats sleep for most of the day.",
  "A recipe: mix flour, water and salt; bake for an hour.",
];

let srv, client, srvModels;

before(async () => {
  const models = {
    emb: makeModel(`${TOK}/bert-uncased`, "bert"),
    rr: makeModel(`${TOK}/xlmr-unigram`, "bert", null, ["--token-types", "1", "--pooling", "rank"]),
    rb: makeModel(`${TOK}/bert-uncased`, "bert", null, ["--pooling", "rank"]),
    qemb: makeModel("qwen3", "qwen3", null, ["--pooling", "last"]), // a decoder embedding model
    qrr: makeModel("qwen3", "qwen3", null, ["--pooling", "rank"]), // a decoder reranker (Qwen3-Reranker)
    nomic: makeModel(`${TOK}/bert-uncased`, "nomic-bert"), // RoPE, fused QKV, SwiGLU
    chat: tinyModel(),
  };
  srvModels = models;
  srv = await startServer({ models });
  client = new OpenAI({ baseURL: srv.url + "/v1", apiKey: "none", maxRetries: 0 });
});

after(async () => {
  if (srv) assert.equal(await srv.stop(), 0, srv.log());
});

async function post(p, body, headers = {}) {
  const r = await fetch(srv.url + p, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: r.status, headers: r.headers, json: await r.json() };
}

const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
const dot = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0);
const maxDiff = (a, b) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

function assertVectorsClose(a, b, tol, what) {
  assert.equal(a.length, b.length, what);
  const d = maxDiff(a, b);
  assert.ok(d <= tol, `${what}: components differ by ${d} (> ${tol})`);
}

function checkList(r, model, n, dim = DIM) {
  assert.equal(r.object, "list");
  assert.equal(r.model, model);
  assert.equal(r.data.length, n);
  r.data.forEach((d, i) => {
    assert.equal(d.object, "embedding");
    assert.equal(d.index, i);
    assert.equal(d.embedding.length, dim);
    const l2 = norm(Array.from(d.embedding));
    assert.ok(Math.abs(l2 - 1) <= 1e-5, `data[${i}] has L2 norm ${l2}`);
  });
  assert.equal(r.usage.prompt_tokens, r.usage.total_tokens);
}

// The vector of each text alone, by the SDK's default request (base64,
// decoded by the SDK).
const alone = new Map();
async function embedAlone(text) {
  if (!alone.has(text)) {
    const r = await client.embeddings.create({ model: "emb", input: text });
    checkList(r, "emb", 1);
    assert.equal(r.usage.prompt_tokens, ids(bert, text).length, JSON.stringify(text));
    alone.set(text, Array.from(r.data[0].embedding));
  }
  return alone.get(text);
}

test("embeddings: shape, unit vectors, reference token counts, batched equals alone", async () => {
  for (const t of TEXTS) await embedAlone(t);

  // a batch of different-length texts, one of them twice
  const input = [...TEXTS, TEXTS[1]];
  const r = await client.embeddings.create({ model: "emb", input });
  checkList(r, "emb", input.length);
  assert.equal(r.usage.prompt_tokens, input.reduce((s, t) => s + ids(bert, t).length, 0));
  const vecs = r.data.map((d) => Array.from(d.embedding));
  input.forEach((t, i) => assertVectorsClose(vecs[i], alone.get(t), 1e-5, `input ${i} batched vs alone`));
  assert.deepEqual(vecs[input.length - 1], vecs[1], "the same text twice in one batch");
  for (let i = 0; i < TEXTS.length; i++)
    for (let k = i + 1; k < TEXTS.length; k++)
      assert.ok(maxDiff(vecs[i], vecs[k]) > 1e-3, `texts ${i} and ${k} give different vectors`);

  // the same request again: the same vectors, bit for bit
  const again = await client.embeddings.create({ model: "emb", input });
  assert.deepEqual(again.data.map((d) => Array.from(d.embedding)), vecs);

  // concurrent requests (batched together by the engine) give the same vectors
  const many = await Promise.all(TEXTS.map((t) => client.embeddings.create({ model: "emb", input: t })));
  many.forEach((m, i) => assertVectorsClose(Array.from(m.data[0].embedding), alone.get(TEXTS[i]), 1e-5,
    `text ${i} among concurrent requests`));
});

test("embeddings from a decoder (last-token pooling, as Qwen3-Embedding): unit vectors, batched equals alone", async () => {
  const qwen = pkgTokenizer("qwen3");
  const one = [];
  for (const t of TEXTS) {
    const r = await client.embeddings.create({ model: "qemb", input: t, encoding_format: "float" });
    checkList(r, "qemb", 1);
    assert.equal(r.usage.prompt_tokens, Array.from(qwen.encode(t)).length, t);
    one.push(Array.from(r.data[0].embedding));
  }
  const r = await client.embeddings.create({ model: "qemb", input: TEXTS, encoding_format: "float" });
  checkList(r, "qemb", TEXTS.length);
  r.data.forEach((d, i) => assertVectorsClose(Array.from(d.embedding), one[i], 1e-5, `qemb input ${i} batched vs alone`));
  // a chat request on it is refused: it is an embedding model
  const c = await post("/v1/chat/completions", { model: "qemb", messages: [{ role: "user", content: "hi" }] });
  assert.equal(c.status, 400);
  assert.equal(c.json.error.code, "model_not_supported");
});

test("embeddings from nomic-bert: unit vectors, reference token counts, batched equals alone", async () => {
  const one = [];
  for (const t of TEXTS) {
    const r = await client.embeddings.create({ model: "nomic", input: t, encoding_format: "float" });
    checkList(r, "nomic", 1);
    assert.equal(r.usage.prompt_tokens, ids(bert, t).length, t);
    one.push(Array.from(r.data[0].embedding));
  }
  const r = await client.embeddings.create({ model: "nomic", input: TEXTS });
  checkList(r, "nomic", TEXTS.length);
  r.data.forEach((d, i) => assertVectorsClose(Array.from(d.embedding), one[i], 1e-5, `nomic input ${i} batched vs alone`));
});

test("embeddings: token-id input gives the text's vector", async () => {
  const a = ids(bert, TEXTS[2]), b = ids(bert, TEXTS[0]);
  assert.equal(a[0], bert.model.tokens_to_ids.get("[CLS]"));
  const one = await client.embeddings.create({ model: "emb", input: a });
  checkList(one, "emb", 1);
  assert.equal(one.usage.prompt_tokens, a.length);
  assertVectorsClose(Array.from(one.data[0].embedding), await embedAlone(TEXTS[2]), 1e-5, "ids vs text");

  const two = await client.embeddings.create({ model: "emb", input: [a, b] });
  checkList(two, "emb", 2);
  assert.equal(two.usage.prompt_tokens, a.length + b.length);
  assertVectorsClose(Array.from(two.data[0].embedding), await embedAlone(TEXTS[2]), 1e-5, "[ids, ids][0]");
  assertVectorsClose(Array.from(two.data[1].embedding), await embedAlone(TEXTS[0]), 1e-5, "[ids, ids][1]");

  // texts and id arrays mixed in one request
  const mixed = await post("/v1/embeddings", { model: "emb", input: [TEXTS[0], a] });
  assert.equal(mixed.status, 200);
  assertVectorsClose(mixed.json.data[1].embedding, await embedAlone(TEXTS[2]), 1e-5, "[text, ids][1]");

  // exactly the context is accepted
  const full = [a[0], ...Array.from({ length: CTX - 2 }, (_, i) => 1000 + (i % 500)), a[a.length - 1]];
  const f = await post("/v1/embeddings", { model: "emb", input: full });
  assert.equal(f.status, 200, JSON.stringify(f.json));
  assert.equal(f.json.usage.prompt_tokens, CTX);
});

function decodeBase64(s) {
  const buf = Buffer.from(s, "base64");
  assert.equal(buf.length % 4, 0);
  const out = [];
  for (let i = 0; i < buf.length; i += 4) out.push(buf.readFloatLE(i));
  return out;
}

test("embeddings: base64 decodes to the float response", async () => {
  const input = TEXTS.slice(0, 3);
  const fl = await post("/v1/embeddings", { model: "emb", input, encoding_format: "float" });
  assert.equal(fl.status, 200);
  const b64 = await post("/v1/embeddings", { model: "emb", input, encoding_format: "base64" });
  assert.equal(b64.status, 200);
  assert.equal(b64.json.usage.prompt_tokens, fl.json.usage.prompt_tokens);
  const sdkDefault = await client.embeddings.create({ model: "emb", input });
  const sdkFloat = await client.embeddings.create({ model: "emb", input, encoding_format: "float" });
  input.forEach((_, i) => {
    const f = fl.json.data[i].embedding;
    assert.ok(Array.isArray(f) && f.every((x) => typeof x === "number"));
    assert.equal(typeof b64.json.data[i].embedding, "string");
    const d = decodeBase64(b64.json.data[i].embedding);
    assertVectorsClose(d, f, 1e-6, `input ${i} base64 vs float`);
    // 9 significant digits name every float32 exactly
    assert.deepEqual(d, f.map(Math.fround), `input ${i}: the float text is the float32 exactly`);
    assert.deepEqual(Array.from(sdkDefault.data[i].embedding), d, `input ${i}: the SDK's default (base64)`);
    assert.deepEqual(sdkFloat.data[i].embedding, f, `input ${i}: the SDK with encoding_format float`);
  });
});

test("embeddings: dimensions truncates and normalizes again", async () => {
  const full = await embedAlone(TEXTS[2]);
  for (const n of [1, 16, DIM]) {
    const r = await client.embeddings.create({ model: "emb", input: TEXTS[2], dimensions: n });
    checkList(r, "emb", 1, n);
    const v = Array.from(r.data[0].embedding);
    const head = full.slice(0, n);
    const cos = dot(v, head) / norm(head);
    assert.ok(Math.abs(cos - 1) <= 1e-5, `dimensions ${n}: cosine with the full vector's head is ${cos}`);
  }
  for (const dimensions of [0, DIM + 1, "x", -1, 1.5]) {
    const r = await post("/v1/embeddings", { model: "emb", input: "hi", dimensions });
    assert.equal(r.status, 400, JSON.stringify(dimensions));
    assert.equal(r.json.error.param, "dimensions");
    assert.equal(r.json.error.type, "invalid_request_error");
    assert.equal(r.json.error.code, "invalid_value");
  }
});

test("embeddings: errors carry status, type, param and code", async () => {
  const vocab = bert.model.vocab.length;
  const long = "river ".repeat(600);
  assert.ok(ids(bert, long).length > CTX);
  const cls = ids(bert, "")[0], sep = ids(bert, "")[1];
  const cases = [
    [{ model: "emb" }, 400, "input", "missing_required_parameter"],
    [{ model: "emb", input: "" }, 400, "input", "invalid_value"],
    [{ model: "emb", input: [] }, 400, "input", "invalid_value"],
    [{ model: "emb", input: ["a", ""] }, 400, "input", "invalid_value"],
    [{ model: "emb", input: [[]] }, 400, "input", "invalid_value"],
    [{ model: "emb", input: long }, 400, "input", "context_length_exceeded"],
    [{ model: "emb", input: ["a", long] }, 400, "input", "context_length_exceeded"],
    [{ model: "emb", input: Array(CTX + 1).fill(1000) }, 400, "input", "context_length_exceeded"],
    [{ model: "emb", input: [cls, vocab, sep] }, 400, "input", "invalid_value"],
    [{ model: "emb", input: [cls, -1, sep] }, 400, "input", "invalid_value"],
    [{ model: "emb", input: [[cls, sep], [cls, vocab + 5, sep]] }, 400, "input", "invalid_value"],
    [{ model: "emb", input: [cls, "a", sep] }, 400, "input", "invalid_value"],
    [{ model: "emb", input: ["a", 5] }, 400, "input", "invalid_type"],
    [{ model: "emb", input: ["a", null] }, 400, "input", "invalid_type"],
    [{ model: "emb", input: ["a", { text: "b" }] }, 400, "input", "invalid_type"],
    [{ model: "emb", input: 5 }, 400, "input", "invalid_type"],
    [{ model: "emb", input: { text: "a" } }, 400, "input", "invalid_type"],
    [{ model: "emb", input: Array(2049).fill("a") }, 400, "input", "invalid_value"],
    [{ model: "emb", input: "a", encoding_format: "hex" }, 400, "encoding_format", "invalid_value"],
    [{ model: "emb", input: "a", user: 5 }, 400, "user", "invalid_type"],
    [{ model: "rr", input: "a" }, 400, "model", "model_not_supported"],
    [{ model: "rb", input: "a" }, 400, "model", "model_not_supported"],
    [{ model: "chat", input: "a" }, 400, "model", "model_not_supported"],
    [{ model: "nope", input: "a" }, 404, "model", "model_not_found"],
    [{ input: "a" }, 400, "model", "missing_required_parameter"],
    [{ model: 5, input: "a" }, 400, "model", "invalid_type"],
  ];
  for (const [body, status, param, code] of cases) {
    const r = await post("/v1/embeddings", body);
    const what = JSON.stringify(body).slice(0, 120);
    assert.equal(r.status, status, what + " -> " + JSON.stringify(r.json));
    assert.equal(r.json.error.type, "invalid_request_error", what);
    assert.equal(r.json.error.param, param, what);
    assert.equal(r.json.error.code, code, what);
    assert.equal(typeof r.json.error.message, "string");
  }
  // the limits themselves are accepted: 2048 inputs
  const most = await post("/v1/embeddings", { model: "emb", input: Array(2048).fill("a") });
  assert.equal(most.status, 200);
  assert.equal(most.json.data.length, 2048);
  assert.equal(most.json.usage.prompt_tokens, 2048 * ids(bert, "a").length);

  // through the SDK: the error object is OpenAI's
  await assert.rejects(client.embeddings.create({ model: "rr", input: "a" }),
    (e) => e.status === 400 && e.code === "model_not_supported" && e.param === "model");
  await assert.rejects(client.embeddings.create({ model: "nope", input: "a" }), (e) => e.status === 404);
  await assert.rejects(
    client.chat.completions.create({ model: "emb", messages: [{ role: "user", content: "hi" }] }),
    (e) => e.status === 400 && e.code === "model_not_supported" && e.param === "model");
  await assert.rejects(client.completions.create({ model: "rr", prompt: "hi" }),
    (e) => e.status === 400 && e.code === "model_not_supported");

  for (const p of ["/v1/embeddings", "/v1/rerank"]) {
    const g = await fetch(srv.url + p);
    assert.equal(g.status, 405, p);
    assert.equal(g.headers.get("allow"), "POST");
    const e = (await g.json()).error;
    assert.equal(e.code, "method_not_allowed");
    for (const bad of ["{bad", "[1, 2]", ""]) {
      const r = await post(p, bad);
      assert.equal(r.status, 400, `${p} ${JSON.stringify(bad)}`);
      assert.equal(r.json.error.code, "invalid_json");
      assert.equal(r.json.error.type, "invalid_request_error");
    }
  }
  // the server is fine afterwards
  assert.deepEqual(Array.from((await client.embeddings.create({ model: "emb", input: TEXTS[0] })).data[0].embedding),
    await embedAlone(TEXTS[0]));
});

// ---- rerank ----

function checkRanking(r, model, docs, { topN = docs.length, returnDocuments = true } = {}) {
  assert.equal(r.model, model);
  assert.match(r.id, /^rerank-/);
  assert.equal(r.results.length, Math.min(topN, docs.length));
  for (let i = 0; i < r.results.length; i++) {
    const x = r.results[i];
    assert.ok(Number.isInteger(x.index) && x.index >= 0 && x.index < docs.length);
    assert.ok(x.relevance_score > 0 && x.relevance_score < 1, `score ${x.relevance_score}`);
    if (i > 0) {
      const p = r.results[i - 1];
      assert.ok(p.relevance_score > x.relevance_score ||
        (p.relevance_score === x.relevance_score && p.index < x.index), "sorted by score, ties by index");
    }
    if (returnDocuments) {
      const d = docs[x.index];
      assert.deepEqual(x.document, { text: typeof d === "string" ? d : d.text });
    } else {
      assert.equal("document" in x, false);
    }
  }
  assert.equal(new Set(r.results.map((x) => x.index)).size, r.results.length, "every index once");
  assert.equal(r.usage.prompt_tokens, r.usage.total_tokens);
}

const RERANKERS = [
  // <s> q </s></s> d </s>
  { model: "rr", ref: xlmr, special: 4 },
  // [CLS] q [SEP] d [SEP]
  { model: "rb", ref: bert, special: 3 },
];

for (const { model, ref, special } of RERANKERS) {
  test(`rerank (${model}): sorted results, top_n, return_documents, pair token counts`, async () => {
    const r = await post("/v1/rerank", { model, query: QUERY, documents: DOCS });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    checkRanking(r.json, model, DOCS);
    const nq = ids(ref, QUERY, false).length;
    const want = DOCS.reduce((s, d) => s + nq + ids(ref, d, false).length + special, 0);
    assert.equal(r.json.usage.prompt_tokens, want);
    // the reference's own pair encoding has the same length
    assert.equal(want, DOCS.reduce((s, d) => s + Array.from(ref.encode(QUERY, { text_pair: d })).length, 0));
    const score = new Map(r.json.results.map((x) => [x.index, x.relevance_score]));

    const top = await post("/v1/rerank", { model, query: QUERY, documents: DOCS, top_n: 2 });
    assert.equal(top.status, 200);
    checkRanking(top.json, model, DOCS, { topN: 2 });
    assert.deepEqual(top.json.results, r.json.results.slice(0, 2));
    assert.equal(top.json.usage.prompt_tokens, want, "every document is scored and billed");
    const big = await post("/v1/rerank", { model, query: QUERY, documents: DOCS, top_n: 100 });
    assert.deepEqual(big.json.results, r.json.results);

    const bare = await post("/v1/rerank", { model, query: QUERY, documents: DOCS, return_documents: false });
    assert.equal(bare.status, 200);
    checkRanking(bare.json, model, DOCS, { returnDocuments: false });
    for (const x of bare.json.results) assert.equal(x.relevance_score, score.get(x.index));

    const objs = DOCS.map((text) => ({ text }));
    const o = await post("/v1/rerank", { model, query: QUERY, documents: objs });
    assert.equal(o.status, 200);
    checkRanking(o.json, model, objs);
    assert.deepEqual(o.json.results, r.json.results);

    // a document far longer than the context is cut and scored
    // (the reference's Unigram is quadratic in a text's length: 60 sentences, ~1000 tokens)
    const long = "The Danube reaches the Black Sea. ".repeat(60);
    assert.ok(ids(ref, long, false).length > CTX + 400);
    const l = await post("/v1/rerank", { model, query: QUERY, documents: [DOCS[1], long] });
    assert.equal(l.status, 200, JSON.stringify(l.json));
    checkRanking(l.json, model, [DOCS[1], long]);
    assert.equal(l.json.usage.prompt_tokens, nq + ids(ref, DOCS[1], false).length + special + CTX);
    assert.equal(l.json.results.find((x) => x.index === 0).relevance_score, score.get(1),
      "a document's score does not depend on its neighbour");
  });
}

test("rerank: scores are deterministic and independent of document order", async () => {
  const body = { model: "rr", query: QUERY, documents: DOCS };
  const a = await post("/v1/rerank", body);
  const b = await post("/v1/rerank", body);
  assert.deepEqual(b.json.results, a.json.results);
  assert.deepEqual(b.json.usage, a.json.usage);
  const score = new Map(a.json.results.map((x) => [x.index, x.relevance_score]));

  for (const model of ["rr", "rb"]) {
    const ab = await post("/v1/rerank", { model, query: QUERY, documents: [DOCS[0], DOCS[3]] });
    const ba = await post("/v1/rerank", { model, query: QUERY, documents: [DOCS[3], DOCS[0]] });
    const s = (r, i) => r.json.results.find((x) => x.index === i).relevance_score;
    assert.equal(s(ab, 0), s(ba, 1), `${model}: document a`);
    assert.equal(s(ab, 1), s(ba, 0), `${model}: document b`);
  }

  // concurrent requests, batched by the engine, score as the lone one did
  const reversed = [...DOCS].reverse();
  const all = await Promise.all([0, 1, 2, 3].map((i) =>
    post("/v1/rerank", { model: "rr", query: QUERY, documents: i % 2 ? reversed : DOCS })));
  all.forEach((r, i) => {
    for (const x of r.json.results) {
      const orig = i % 2 ? DOCS.length - 1 - x.index : x.index;
      assert.equal(x.relevance_score, score.get(orig), `request ${i} document ${x.index}`);
    }
  });
});

// Qwen3-Reranker's prompt, as llama.cpp's converter (and `silica mkmodel
// --pooling rank` for a decoder) writes it in tokenizer.chat_template.rerank.
const QWEN3_RERANK_TEMPLATE =
  "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct " +
  "provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n" +
  "<|im_start|>user\n<Instruct>: Given a web search query, retrieve relevant passages that answer the query\n" +
  "<Query>: {query}\n<Document>: {document}<|im_end|>\n" +
  "<|im_start|>assistant\n<think>\n\n</think>\n\n";
const rerankPrompt = (q, d) => QWEN3_RERANK_TEMPLATE.replace("{query}", () => q).replace("{document}", () => d);

test("rerank from a decoder (qrr, Qwen3-Reranker's layout): the template's tokens, P(yes) from the output rows", async () => {
  const qwen = pkgTokenizer("qwen3");
  const pairIds = (d) => Array.from(qwen.encode(rerankPrompt(QUERY, d), { add_special_tokens: false }));
  // the template's <|im_start|> / <|im_end|> are special tokens, one id each
  const imStart = tokenId(qwen, "<|im_start|>");
  assert.equal(pairIds(DOCS[0]).filter((x) => x === imStart).length, 3);
  assert.deepEqual(pairIds(DOCS[0]), Array.from(qwen.encode(rerankPrompt(QUERY, DOCS[0]))), "no added specials");

  const r = await post("/v1/rerank", { model: "qrr", query: QUERY, documents: DOCS });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  checkRanking(r.json, "qrr", DOCS);
  assert.equal(r.json.usage.prompt_tokens, DOCS.reduce((s, d) => s + pairIds(d).length, 0));
  const score = new Map(r.json.results.map((x) => [x.index, x.relevance_score]));
  assert.ok(new Set(score.values()).size > 1, "the documents do not all score the same");

  // each pair alone: its reference token count, and the score it had among the others
  for (let i = 0; i < DOCS.length; i++) {
    const one = await post("/v1/rerank", { model: "qrr", query: QUERY, documents: [DOCS[i]] });
    assert.equal(one.status, 200, JSON.stringify(one.json));
    assert.equal(one.json.usage.prompt_tokens, pairIds(DOCS[i]).length, `document ${i}`);
    assert.equal(one.json.results[0].relevance_score, score.get(i), `document ${i} alone`);
  }

  // deterministic, and independent of the documents' order
  const again = await post("/v1/rerank", { model: "qrr", query: QUERY, documents: DOCS });
  assert.deepEqual(again.json, { ...r.json, id: again.json.id });
  const reversed = [...DOCS].reverse();
  const rev = await post("/v1/rerank", { model: "qrr", query: QUERY, documents: reversed });
  assert.equal(rev.status, 200);
  checkRanking(rev.json, "qrr", reversed);
  assert.equal(rev.json.usage.prompt_tokens, r.json.usage.prompt_tokens);
  for (const x of rev.json.results)
    assert.equal(x.relevance_score, score.get(DOCS.length - 1 - x.index), `reversed document ${x.index}`);
  const top = await post("/v1/rerank", { model: "qrr", query: QUERY, documents: DOCS, top_n: 2, return_documents: false });
  checkRanking(top.json, "qrr", DOCS, { topN: 2, returnDocuments: false });
  assert.deepEqual(top.json.results, r.json.results.slice(0, 2).map(({ index, relevance_score }) => ({ index, relevance_score })));

  // the score is P(yes) = softmax over the last position's "yes" and "no"
  // logits of the same file run as a decoder (`silica logits`: 6 digits)
  const ids0 = pairIds(DOCS[0]);
  const lg = spawnSync(BIN, ["logits", "--model", srvModels.qrr, "-t", "1", ...ids0.map(String)],
    { encoding: "utf8", maxBuffer: 64 << 20 });
  assert.equal(lg.status, 0, lg.stderr);
  const logits = lg.stdout.trim().split("\n").map(Number);
  const ly = logits[tokenId(qwen, "yes")], ln = logits[tokenId(qwen, "no")];
  const pYes = 1 / (1 + Math.exp(ln - ly));
  assert.ok(Math.abs(score.get(0) - pYes) < 1e-5, `score ${score.get(0)} vs P(yes) ${pYes} from the logits`);

  // a document longer than the context (1024) is cut until the pair fits
  const long = "The Danube reaches the Black Sea. ".repeat(200);
  assert.ok(pairIds(long).length > 1024 + 200);
  const l = await post("/v1/rerank", { model: "qrr", query: QUERY, documents: [DOCS[1], long] });
  assert.equal(l.status, 200, JSON.stringify(l.json));
  checkRanking(l.json, "qrr", [DOCS[1], long]);
  const nLong = l.json.usage.prompt_tokens - pairIds(DOCS[1]).length;
  assert.ok(nLong > 1024 - 16 && nLong <= 1024, `the long pair is ${nLong} tokens`);
  assert.equal(l.json.results.find((x) => x.index === 0).relevance_score, score.get(1));

  // it ranks; it neither embeds nor chats
  const e = await post("/v1/embeddings", { model: "qrr", input: "hi" });
  assert.equal(e.status, 400, JSON.stringify(e.json));
  assert.equal(e.json.error.code, "model_not_supported");
  assert.equal(e.json.error.param, "model");
  const c = await post("/v1/chat/completions", { model: "qrr", messages: [{ role: "user", content: "hi" }] });
  assert.equal(c.status, 400, JSON.stringify(c.json));
  assert.equal(c.json.error.code, "model_not_supported");
  assert.equal(c.json.error.param, "model");
});

test("rerank: errors", async () => {
  const cases = [
    [{ model: "rr", documents: DOCS }, 400, "query", "missing_required_parameter"],
    [{ model: "rr", query: "", documents: DOCS }, 400, "query", "invalid_value"],
    [{ model: "rr", query: 5, documents: DOCS }, 400, "query", "invalid_value"],
    [{ model: "rr", query: QUERY }, 400, "documents", "missing_required_parameter"],
    [{ model: "rr", query: QUERY, documents: [] }, 400, "documents", "invalid_value"],
    [{ model: "rr", query: QUERY, documents: "a" }, 400, "documents", "invalid_value"],
    [{ model: "rr", query: QUERY, documents: ["a", 1] }, 400, "documents", "invalid_type"],
    [{ model: "rr", query: QUERY, documents: [{ title: "a" }] }, 400, "documents", "invalid_type"],
    [{ model: "rr", query: QUERY, documents: DOCS, top_n: 0 }, 400, "top_n", "invalid_value"],
    [{ model: "rr", query: QUERY, documents: DOCS, top_n: "2" }, 400, "top_n", "invalid_value"],
    [{ model: "rr", query: QUERY, documents: DOCS, return_documents: "no" }, 400, "return_documents", "invalid_type"],
    [{ model: "rr", query: "river ".repeat(CTX), documents: DOCS }, 400, "query", "context_length_exceeded"],
    [{ model: "emb", query: QUERY, documents: DOCS }, 400, "model", "model_not_supported"],
    [{ model: "chat", query: QUERY, documents: DOCS }, 400, "model", "model_not_supported"],
    [{ model: "nope", query: QUERY, documents: DOCS }, 404, "model", "model_not_found"],
  ];
  for (const [body, status, param, code] of cases) {
    const r = await post("/v1/rerank", body);
    const what = JSON.stringify(body).slice(0, 120);
    assert.equal(r.status, status, what + " -> " + JSON.stringify(r.json));
    assert.equal(r.json.error.type, "invalid_request_error", what);
    assert.equal(r.json.error.param, param, what);
    assert.equal(r.json.error.code, code, what);
  }
});

test("/v1/models: embedding and reranker sub_types and capabilities", async () => {
  const all = await (await fetch(srv.url + "/v1/models")).json();
  const by = new Map(all.data.map((m) => [m.id, m]));
  assert.deepEqual([...by.keys()].sort(), ["chat", "emb", "nomic", "qemb", "qrr", "rb", "rr"]);
  const emb = by.get("emb");
  assert.equal(emb.sub_type, "embedding");
  assert.equal(emb.dimensions, DIM);
  assert.equal(emb.context_length, CTX);
  assert.equal(emb.capabilities.embeddings, true);
  assert.equal(emb.capabilities.rerank, false);
  assert.equal(emb.capabilities.chat, false);
  assert.equal(emb.capabilities.completion, false);
  for (const id of ["rr", "rb", "qrr"]) {
    const m = by.get(id);
    assert.equal(m.sub_type, "reranker");
    assert.equal(m.dimensions, undefined, `${id}: a reranker has no embedding dimensions`);
    assert.equal(m.capabilities.rerank, true);
    assert.equal(m.capabilities.embeddings, false);
    assert.equal(m.capabilities.chat, false);
  }
  assert.equal(by.get("chat").sub_type, "chat");
  assert.ok(!by.get("chat").capabilities.embeddings && !by.get("chat").capabilities.rerank);

  const sub = async (q) => (await (await fetch(srv.url + "/v1/models?" + q)).json()).data.map((m) => m.id).sort();
  assert.deepEqual(await sub("sub_type=embedding"), ["emb", "nomic", "qemb"]);
  assert.deepEqual(await sub("sub_type=reranker"), ["qrr", "rb", "rr"]);
  assert.deepEqual(await sub("sub_type=chat"), ["chat"]);
  const one = await client.models.retrieve("rr");
  assert.equal(one.sub_type, "reranker");
});

test("a client that leaves cancels its embeddings; the server goes on", async () => {
  // 300 inputs of 400 tokens: seconds of work on a CPU
  const body = {
    model: "emb",
    input: Array.from({ length: 300 }, (_, i) =>
      [101, ...Array.from({ length: 398 }, (_, k) => 1000 + ((i * 7 + k * 13) % 2000)), 102]),
  };
  const total = 300 * 400;
  const BATCH = 'silica_engine_batch_tokens_total{model="emb"}';
  const m0 = await metrics(srv.url);
  const ac = new AbortController();
  const req = fetch(srv.url + "/v1/embeddings", {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal: ac.signal,
  });
  req.catch(() => {});
  // leave once the engine has the request, ~50 ms into its work
  const t0 = Date.now();
  while ((await (await fetch(srv.url + "/health")).json()).live_sequences === 0) {
    assert.ok(Date.now() - t0 < 5000, "the request reached the engine");
    await new Promise((r) => setTimeout(r, 5));
  }
  await new Promise((r) => setTimeout(r, 50));
  ac.abort();
  await assert.rejects(req, (e) => e.name === "AbortError");

  // at once, a small request: answered, and right
  const r = await client.embeddings.create({ model: "emb", input: TEXTS[2] }, { timeout: 5000 });
  assertVectorsClose(Array.from(r.data[0].embedding), await embedAlone(TEXTS[2]), 1e-5, "after the abort");
  const h = await waitIdle(srv.url, 3000);
  assert.equal(h.live_sequences, 0);
  assert.equal(h.running_sequences, 0);
  assert.equal(h.queued_sequences, 0);
  const m1 = await metrics(srv.url);
  assert.equal(m1.silica_sequences_cancelled_total - m0.silica_sequences_cancelled_total, 1);
  const computed = m1[BATCH] - m0[BATCH] - r.usage.prompt_tokens;
  assert.ok(computed < total / 2, `the abandoned work stopped: ${computed} of its ${total} tokens computed`);
});

// ---- billing ----

test("billing: embeddings charge the input tokens as prompt tokens", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "silica-emb-e2e-"));
  let paid = null;
  const admin = (...args) => {
    const r = spawnSync(BIN, ["admin", "--data", dir, ...args], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`admin ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  const balance = (id) => Number(JSON.parse(admin("accounts", "show", String(id))).data.totalBalance);
  // request,requests,prompt_tokens,cached,completion,reasoning,total,cost
  const ledger = (id) => admin("usage", "--by", "request", "--format", "csv", "--account", String(id))
    .trim().split("\n").slice(1).filter(Boolean).map((l) => {
      const c = l.split(",");
      return { id: c[0], n: Number(c[1]), prompt: Number(c[2]), completion: Number(c[4]), cost: Number(c[7]) };
    });
  try {
    const id = Number(admin("accounts", "create", "emma").match(/account (\d+)/)[1]);
    const key = admin("keys", "create", "--account", String(id), "--name", "emma").trim();
    // 1000 yuan per million input tokens: 0.001 yuan a token
    admin("models", "set-price", "emb", "--input", "1000", "--output", "5");
    paid = await startServer({ models: { emb: makeModel(`${TOK}/bert-uncased`, "bert") }, args: ["--data", dir] });
    const c = new OpenAI({ baseURL: paid.url + "/v1", apiKey: key, maxRetries: 0 });

    await assert.rejects(new OpenAI({ baseURL: paid.url + "/v1", apiKey: "sk-nope", maxRetries: 0 })
      .embeddings.create({ model: "emb", input: "a" }), (e) => e.status === 401);
    const anon = await fetch(paid.url + "/v1/embeddings", {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "emb", input: "a" }),
    });
    assert.equal(anon.status, 401);
    assert.equal((await anon.json()).error.code, "missing_api_key");
    // a refused request costs nothing
    await assert.rejects(c.embeddings.create({ model: "emb", input: "" }), (e) => e.status === 400);

    const before = balance(id);
    const { data: r, response } = await c.embeddings.create({ model: "emb", input: TEXTS }).withResponse();
    checkList(r, "emb", TEXTS.length);
    const tokens = TEXTS.reduce((s, t) => s + ids(bert, t).length, 0);
    assert.equal(r.usage.prompt_tokens, tokens);
    const after = balance(id);
    assert.ok(Math.abs(before - after - tokens * 0.001) < 1e-9, `balance ${before} -> ${after} for ${tokens} tokens`);
    const rows = ledger(id);
    assert.equal(rows.length, 1, JSON.stringify(rows));
    assert.equal(rows[0].id, response.headers.get("x-request-id"));
    assert.equal(rows[0].n, 1);
    assert.equal(rows[0].prompt, tokens);
    assert.equal(rows[0].completion, 0);
    assert.ok(Math.abs(rows[0].cost - tokens * 0.001) < 1e-9);

    // the account's own usage view agrees
    const u = await (await fetch(paid.url + "/v1/user/usage", { headers: { authorization: "Bearer " + key } })).json();
    const days = Array.isArray(u) ? u : u.data;
    assert.equal(days.reduce((s, d) => s + d.requests, 0), 1, JSON.stringify(u));
    assert.equal(days.reduce((s, d) => s + d.prompt_tokens, 0), tokens);
    assert.equal(days.reduce((s, d) => s + d.completion_tokens, 0), 0);
    admin("verify");
  } finally {
    if (paid) assert.equal(await paid.stop(), 0, paid.log());
    rmSync(dir, { recursive: true, force: true });
  }
});
