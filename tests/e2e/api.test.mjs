// The OpenAI-compatible API driven by the official `openai` npm SDK against
// `silica serve` on a tiny generated model: shapes, streaming, n, stop
// strings, seeds, logprobs, usage, every error status, CORS, disconnects.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startServer, waitIdle, metrics } from "./lib/server.mjs";

let srv, client;

before(async () => {
  srv = await startServer({ args: ["--max-body", "65536", "--max-running", "4", "--max-queued", "8", "--ctx", "512"] });
  client = new OpenAI({ baseURL: srv.url + "/v1", apiKey: "test", maxRetries: 0 });
});

after(async () => {
  const code = await srv.stop();
  assert.equal(code, 0, "server exits cleanly on SIGTERM:\n" + srv.log());
});

const chatMsgs = [{ role: "user", content: "Hello there" }];

function checkUsage(u) {
  assert.equal(typeof u.prompt_tokens, "number");
  assert.ok(u.prompt_tokens > 0);
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
  const cached = u.prompt_tokens_details.cached_tokens;
  assert.ok(Number.isInteger(cached) && cached >= 0 && cached < u.prompt_tokens, `cached_tokens ${cached}`);
  assert.equal(u.completion_tokens_details.reasoning_tokens, 0);
}

test("models: list, filter, retrieve, unknown", async () => {
  const list = await client.models.list();
  assert.deepEqual(list.data.map((m) => m.id), ["tiny"]);
  assert.equal(list.data[0].object, "model");
  assert.equal(list.data[0].owned_by, "silica");
  const one = await client.models.retrieve("tiny");
  assert.equal(one.id, "tiny");
  const chat = await (await fetch(srv.url + "/v1/models?type=text&sub_type=chat")).json();
  assert.equal(chat.data.length, 1);
  const img = await (await fetch(srv.url + "/v1/models?type=image")).json();
  assert.equal(img.data.length, 0);
  await assert.rejects(client.models.retrieve("nope"), (e) => e.status === 404 && /tiny/.test(e.message));
});

test("chat: non-stream shape and usage", async () => {
  const r = await client.chat.completions.create({ model: "tiny", messages: chatMsgs, max_tokens: 8, seed: 1 });
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.object, "chat.completion");
  assert.equal(r.model, "tiny");
  assert.equal(typeof r.created, "number");
  assert.equal(typeof r.system_fingerprint, "string");
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].index, 0);
  assert.equal(r.choices[0].message.role, "assistant");
  assert.equal(typeof r.choices[0].message.content, "string");
  assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
  checkUsage(r.usage);
  assert.ok(r.usage.completion_tokens <= 8);
});

test("usage reports prompt tokens served from the prefix cache", async () => {
  const long = [{ role: "user", content: "Tell me about " + "the prefix cache and its blocks ".repeat(20) }];
  const a = await client.chat.completions.create({ model: "tiny", messages: long, max_tokens: 2, seed: 1 });
  const b = await client.chat.completions.create({ model: "tiny", messages: long, max_tokens: 2, seed: 1 });
  assert.equal(a.usage.prompt_tokens, b.usage.prompt_tokens);
  const cached = b.usage.prompt_tokens_details.cached_tokens;
  assert.ok(cached > 0 && cached < b.usage.prompt_tokens, `cached ${cached} of ${b.usage.prompt_tokens}`);
  assert.equal(b.choices[0].message.content, a.choices[0].message.content, "a cached prefix gives the same output");
  const m = await metrics(srv.url);
  assert.ok(m['silica_prefix_cache_hit_tokens_total{model="tiny"}'] >= cached, "engine metrics are served");
});

test("chat: stream equals non-stream for the same seed, usage only when asked", async () => {
  const args = { model: "tiny", messages: chatMsgs, max_tokens: 12, seed: 42, temperature: 1 };
  const whole = await client.chat.completions.create(args);
  const stream = await client.chat.completions.create({ ...args, stream: true, stream_options: { include_usage: true } });
  let text = "", role = null, finish = null, usage = null, nAfterUsage = 0;
  for await (const c of stream) {
    assert.equal(c.object, "chat.completion.chunk");
    assert.equal(c.id.slice(0, 9), "chatcmpl-");
    if (usage) nAfterUsage++;
    if (c.usage) { usage = c.usage; assert.deepEqual(c.choices, []); continue; }
    assert.equal(c.usage, null);
    const d = c.choices[0].delta;
    if (d.role) role = d.role;
    if (d.content) text += d.content;
    if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
  }
  assert.equal(role, "assistant");
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.ok(usage, "include_usage gives a usage chunk");
  assert.equal(nAfterUsage, 0, "usage is the last chunk");
  checkUsage(usage);
  assert.deepEqual(usage, whole.usage);
  const plain = await client.chat.completions.create({ ...args, stream: true });
  for await (const c of plain) assert.equal(c.usage, undefined);
});

test("completions: non-stream, stream, echo, prompt arrays and token ids", async () => {
  const args = { model: "tiny", prompt: "Once upon a time", max_tokens: 10, seed: 5 };
  const r = await client.completions.create(args);
  assert.equal(r.object, "text_completion");
  assert.match(r.id, /^cmpl-/);
  checkUsage(r.usage);
  const s = await client.completions.create({ ...args, stream: true });
  let text = "";
  for await (const c of s) text += c.choices[0]?.text ?? "";
  assert.equal(text, r.choices[0].text);
  const e = await client.completions.create({ ...args, echo: true });
  assert.equal(e.choices[0].text, "Once upon a time" + r.choices[0].text);
  const multi = await client.completions.create({ ...args, prompt: ["a b", "c d"], n: 2 });
  assert.deepEqual(multi.choices.map((c) => c.index), [0, 1, 2, 3]);
  const ids = await client.completions.create({ ...args, prompt: [9707, 1879] });
  assert.equal(ids.usage.prompt_tokens, 2);
});

test("n=2 gives two indexed choices, in stream too", async () => {
  const r = await client.chat.completions.create({ model: "tiny", messages: chatMsgs, max_tokens: 6, n: 2, seed: 3 });
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1]);
  assert.notEqual(r.choices[0].message.content, r.choices[1].message.content);
  const s = await client.chat.completions.create({ model: "tiny", messages: chatMsgs, max_tokens: 6, n: 2, seed: 3, stream: true });
  const texts = ["", ""], fin = [null, null];
  for await (const c of s) for (const ch of c.choices) {
    texts[ch.index] += ch.delta.content ?? "";
    if (ch.finish_reason) fin[ch.index] = ch.finish_reason;
  }
  assert.deepEqual(texts, r.choices.map((c) => c.message.content));
  assert.ok(fin.every((f) => f));
});

test("seed determinism: same seed same text, other seed other text", async () => {
  const a = { model: "tiny", prompt: "The", max_tokens: 16, temperature: 1.0, seed: 1234 };
  const t1 = (await client.completions.create(a)).choices[0].text;
  const t2 = (await client.completions.create(a)).choices[0].text;
  const t3 = (await client.completions.create({ ...a, seed: 1235 })).choices[0].text;
  assert.equal(t1, t2);
  assert.notEqual(t1, t3);
});

test("stop strings are never emitted, even split across tokens", async () => {
  const a = { model: "tiny", prompt: "Stop test", max_tokens: 24, seed: 77, logprobs: 0 };
  const ref = await client.completions.create(a);
  const toks = ref.choices[0].logprobs.tokens;
  const full = ref.choices[0].text;
  // a stop string made of the end of token k and the start of token k+1
  let k = -1;
  for (let i = 3; i + 1 < toks.length; i++) if (toks[i].length >= 2 && toks[i + 1].length >= 1 && !toks[i].includes("\ufffd") && !toks[i + 1].includes("\ufffd")) { k = i; break; }
  assert.ok(k > 0, "found two adjacent text tokens: " + JSON.stringify(toks));
  const off = ref.choices[0].logprobs.text_offset[k + 1];
  const stop = full.slice(off - 2, off + 1);
  const want = full.slice(0, full.indexOf(stop));
  const r = await client.completions.create({ ...a, stop: [stop, "@@never@@"] });
  assert.equal(r.choices[0].text, want);
  assert.equal(r.choices[0].finish_reason, "stop");
  const s = await client.completions.create({ ...a, stop, stream: true });
  let text = "", fin = null;
  for await (const c of s) { text += c.choices[0]?.text ?? ""; fin = c.choices[0]?.finish_reason ?? fin; }
  assert.equal(text, want);
  assert.ok(!text.includes(stop));
  assert.equal(fin, "stop");
  // chat, streamed: a stop string from the reference chat output
  const cref = await client.chat.completions.create({ model: "tiny", messages: chatMsgs, max_tokens: 20, seed: 9 });
  const ct = cref.choices[0].message.content;
  const cstop = ct.slice(5, 8);
  const cs = await client.chat.completions.create({ model: "tiny", messages: chatMsgs, max_tokens: 20, seed: 9, stop: cstop, stream: true });
  let ctext = "";
  for await (const c of cs) ctext += c.choices[0]?.delta?.content ?? "";
  assert.equal(ctext, ct.slice(0, ct.indexOf(cstop)));
});

test("logprobs: chat top_logprobs and completions logprobs", async () => {
  const r = await client.chat.completions.create({ model: "tiny", messages: chatMsgs, max_tokens: 5, seed: 2, logprobs: true, top_logprobs: 3 });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, r.usage.completion_tokens);
  for (const e of content) {
    assert.ok(e.logprob <= 0);
    assert.equal(e.top_logprobs.length, 3);
    assert.ok(Array.isArray(e.bytes));
    for (let i = 1; i < 3; i++) assert.ok(e.top_logprobs[i - 1].logprob >= e.top_logprobs[i].logprob);
    assert.ok(e.logprob <= e.top_logprobs[0].logprob + 1e-6);
  }
  const c = await client.completions.create({ model: "tiny", prompt: "x", max_tokens: 4, seed: 2, logprobs: 2 });
  const lp = c.choices[0].logprobs;
  assert.equal(lp.tokens.length, 4);
  assert.equal(lp.token_logprobs.length, 4);
  assert.equal(Object.keys(lp.top_logprobs[0]).length, 2);
  assert.equal(lp.text_offset[0], 0);
  const none = await client.chat.completions.create({ model: "tiny", messages: chatMsgs, max_tokens: 2 });
  assert.equal(none.choices[0].logprobs, null);
});

test("completions echo + logprobs scores the prompt like OpenAI, matching the generation path", async () => {
  const prompt = "The quick brown fox jumps over the lazy dog, then naps.";
  const r = await client.completions.create({ model: "tiny", prompt, max_tokens: 3, seed: 4, echo: true, logprobs: 3, return_token_ids: true });
  const ids = r.choices[0].prompt_token_ids;
  const lp = r.choices[0].logprobs;
  const n = ids.length;
  assert.ok(n > 8);
  assert.equal(lp.tokens.length, n + r.usage.completion_tokens);
  assert.equal(lp.token_logprobs[0], null, "the first prompt token has no logprob");
  assert.equal(lp.top_logprobs[0], null);
  assert.equal(lp.tokens.slice(0, n).join(""), prompt);
  assert.equal(lp.text_offset[0], 0);
  for (let q = 1; q < lp.tokens.length; q++) assert.equal(lp.text_offset[q], lp.text_offset[q - 1] + Buffer.byteLength(lp.tokens[q - 1]));
  assert.ok(r.choices[0].text.startsWith(prompt));
  // Each prompt position's scores equal the first generated token's scores
  // after the same prefix (the sampler's path, no penalties: raw distribution).
  for (const q of [1, 2, 5, n - 1]) {
    const g = await client.completions.create({ model: "tiny", prompt: ids.slice(0, q), max_tokens: 1, logprobs: 3, seed: 1 });
    const want = g.choices[0].logprobs.top_logprobs[0];
    const got = lp.top_logprobs[q];
    assert.equal(lp.token_logprobs[q] <= 0, true);
    for (const [tok, v] of Object.entries(want)) {
      assert.ok(tok in got, `position ${q}: ${tok} missing from ${JSON.stringify(got)}`);
      assert.ok(Math.abs(got[tok] - v) < 1e-3, `position ${q}: ${tok} ${got[tok]} vs ${v}`);
    }
    const mine = lp.tokens[q];
    if (mine in want) assert.ok(Math.abs(lp.token_logprobs[q] - want[mine]) < 1e-3);
    assert.ok(lp.token_logprobs[q] <= Math.max(...Object.values(got)) + 1e-6);
  }
  // max_tokens 0 with echo: score only
  const z = await client.completions.create({ model: "tiny", prompt, max_tokens: 0, echo: true, logprobs: 1 });
  assert.equal(z.choices[0].text, prompt);
  assert.equal(z.choices[0].finish_reason, "length");
  assert.equal(z.usage.completion_tokens, 0);
  assert.deepEqual(z.choices[0].logprobs.token_logprobs, lp.token_logprobs.slice(0, n).map((v) => v), "same scores");
  await assert.rejects(client.completions.create({ model: "tiny", prompt, max_tokens: 0 }), (e) => e.status === 400 && e.param === "max_tokens");
  // streaming: the echo chunk carries the prompt's scores
  const st = await client.completions.create({ model: "tiny", prompt, max_tokens: 2, seed: 4, echo: true, logprobs: 3, stream: true });
  let first = null;
  for await (const c of st) if (!first && c.choices.length) first = c.choices[0];
  assert.equal(first.text, prompt);
  assert.deepEqual(first.logprobs.token_logprobs, lp.token_logprobs.slice(0, n));
  await waitIdle(srv.url);
});

async function raw(method, p, body, headers = {}) {
  const r = await fetch(srv.url + p, { method, body, headers: { "content-type": "application/json", ...headers } });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch {}
  return { status: r.status, json, headers: r.headers };
}

function isOaiError(j) {
  return j && j.error && typeof j.error.message === "string" && "type" in j.error && "param" in j.error && "code" in j.error;
}

test("errors: 400 / 404 / 405 / 413 with OpenAI bodies", async () => {
  let r = await raw("POST", "/v1/chat/completions", "{not json");
  assert.equal(r.status, 400); assert.ok(isOaiError(r.json));
  r = await raw("POST", "/v1/chat/completions", "[1,2]");
  assert.equal(r.status, 400);
  await assert.rejects(client.chat.completions.create({ model: "tiny", messages: chatMsgs, temperature: "hot" }),
    (e) => e.status === 400 && e.param === "temperature" && /expected a number/.test(e.message));
  await assert.rejects(client.chat.completions.create({ model: "tiny", messages: chatMsgs, temperature: 3 }),
    (e) => e.status === 400 && e.param === "temperature");
  await assert.rejects(client.chat.completions.create({ model: "tiny", messages: chatMsgs, n: "2" }),
    (e) => e.status === 400 && e.param === "n");
  await assert.rejects(client.chat.completions.create({ model: "tiny", messages: chatMsgs, stop: ["a", "b", "c", "d", "e"] }),
    (e) => e.status === 400 && e.param === "stop");
  await assert.rejects(client.chat.completions.create({ model: "tiny", messages: chatMsgs, logit_bias: { "999999999": 5 } }),
    (e) => e.status === 400 && e.param === "logit_bias");
  await assert.rejects(client.chat.completions.create({ model: "tiny" }),
    (e) => e.status === 400 && e.param === "messages");
  await assert.rejects(client.chat.completions.create({ model: "tiny", messages: [] }),
    (e) => e.status === 400 && e.param === "messages");
  await assert.rejects(client.chat.completions.create({ model: "tiny", messages: [{ role: "wizard", content: "x" }] }),
    (e) => e.status === 400);
  await assert.rejects(client.chat.completions.create({ messages: chatMsgs }), (e) => e.status === 400 && e.param === "model");
  await assert.rejects(client.chat.completions.create({ model: "tiny", messages: chatMsgs, stream_options: { include_usage: true } }),
    (e) => e.status === 400 && e.param === "stream_options");
  // prompt longer than the context: the message names both lengths
  const long = "word ".repeat(700);
  await assert.rejects(client.completions.create({ model: "tiny", prompt: long }),
    (e) => e.status === 400 && e.code === "context_length_exceeded" && /512/.test(e.message) && /\d{3} tokens long/.test(e.message));
  await assert.rejects(client.completions.create({ model: "tiny", prompt: "hi", max_tokens: 100000 }),
    (e) => e.status === 400 && e.param === "max_tokens" && /512/.test(e.message));
  await assert.rejects(client.chat.completions.create({ model: "gpt-4", messages: chatMsgs }),
    (e) => e.status === 404 && e.code === "model_not_found" && /'tiny'/.test(e.message));
  r = await raw("GET", "/v1/chat/completions");
  assert.equal(r.status, 405); assert.ok(isOaiError(r.json)); assert.equal(r.headers.get("allow"), "POST");
  r = await raw("DELETE", "/v1/models");
  assert.equal(r.status, 405);
  r = await raw("GET", "/v1/nothing");
  assert.equal(r.status, 404); assert.ok(isOaiError(r.json));
  r = await raw("POST", "/v1/completions", JSON.stringify({ model: "tiny", prompt: "x".repeat(100000) }));
  assert.equal(r.status, 413); assert.ok(isOaiError(r.json));
});

test("503 with Retry-After when the queue is full", async () => {
  // max-running 4 + max-queued 8: a request for 16 sequences cannot be queued
  await assert.rejects(client.completions.create({ model: "tiny", prompt: "x", n: 16, max_tokens: 2 }),
    (e) => e.status === 503 && e.headers.get("retry-after") === "1");
  await waitIdle(srv.url);
  const ok = await client.completions.create({ model: "tiny", prompt: "x", max_tokens: 2 });
  assert.equal(ok.choices.length, 1);
});

test("CORS preflight and headers", async () => {
  const r = await fetch(srv.url + "/v1/chat/completions", { method: "OPTIONS",
    headers: { origin: "http://example.com", "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type" } });
  assert.equal(r.status, 204);
  assert.equal(r.headers.get("access-control-allow-origin"), "*");
  assert.match(r.headers.get("access-control-allow-methods"), /POST/);
  assert.match(r.headers.get("access-control-allow-headers"), /authorization/);
  const g = await fetch(srv.url + "/v1/models", { headers: { origin: "http://example.com" } });
  assert.equal(g.headers.get("access-control-allow-origin"), "*");
});

test("disconnect mid-stream cancels the generation and frees it; server keeps serving", async () => {
  const before = await metrics(srv.url);
  const s = await client.chat.completions.create({ model: "tiny", messages: chatMsgs, max_tokens: 400, stream: true, seed: 1 });
  let n = 0;
  for await (const c of s) { if (++n === 3) break; } // break aborts the HTTP request
  const h = await waitIdle(srv.url, 3000);
  assert.equal(h.live_sequences, 0);
  const after = await metrics(srv.url);
  assert.equal(after.silica_sequences_cancelled_total, before.silica_sequences_cancelled_total + 1);
  assert.ok(after.silica_tokens_generated_total - before.silica_tokens_generated_total < 200, "stopped early");
  const r = await client.chat.completions.create({ model: "tiny", messages: chatMsgs, max_tokens: 3 });
  assert.equal(r.choices.length, 1);
  // non-stream request whose client goes away
  const ac = new AbortController();
  const p = fetch(srv.url + "/v1/completions", { method: "POST", signal: ac.signal, headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", prompt: "x", max_tokens: 400 }) }).catch(() => null);
  await new Promise((r2) => setTimeout(r2, 100));
  ac.abort();
  await p;
  await waitIdle(srv.url, 3000);
  const m = await metrics(srv.url);
  assert.equal(m['silica_http_responses_total{class="5xx"}'], before['silica_http_responses_total{class="5xx"}']);
  assert.ok(m.silica_sequences_cancelled_total >= before.silica_sequences_cancelled_total + 2, "non-stream cancelled too");
});

test("one server loads up to 64 models; the 65th is refused before any loads", async () => {
  const { spawnSync } = await import("node:child_process");
  const { BIN, tinyModel } = await import("./lib/server.mjs");
  const model = tinyModel();
  const many = (n) => Array.from({ length: n }, (_, i) => ["--model", `m${i}=${model}`]).flat();
  const r = spawnSync(BIN, ["serve", "--port", "0", "--no-auth", ...many(65)], { encoding: "utf8", timeout: 10000 });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /at most 64 models/, r.stderr);
  // more than the 16 an earlier build took: all listed, each answers
  const big = await startServer({ args: ["--ctx", "256", ...many(20).slice(2)] });
  try {
    const c = new OpenAI({ baseURL: big.url + "/v1", apiKey: "test", maxRetries: 0 });
    const ids = (await c.models.list()).data.map((m) => m.id);
    for (let i = 1; i < 20; i++) assert.ok(ids.includes(`m${i}`), `m${i} listed: ${ids}`);
    const out = await c.completions.create({ model: "m19", prompt: "a b", max_tokens: 2, temperature: 0 });
    assert.equal(out.model, "m19");
  } finally {
    assert.equal(await big.stop(), 0);
  }
});
