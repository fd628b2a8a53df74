// `silica route` in front of two `silica serve` nodes, driven by the
// official openai SDK pointed at the router: prefix affinity (a shared long
// system prompt lands on one node and its second request reads the cache),
// spread of unrelated prompts, streaming passed through as it arrives, a
// client abort cancelling on the node, failover when a node dies and the
// keys coming back when it returns, the nodes' own errors passed through.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import net from "node:net";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { BIN, startServer, tinyModel, metrics, waitIdle } from "./lib/server.mjs";

const NODE_ARGS = ["--no-auth", "--no-console", "--ctx", "1024"];
// End-of-generation ids of the Qwen3 tokenizer: banned where a generation
// must run long.
const NO_EOS = { 151643: -100, 151645: -100 };
const SYS = "You are the support assistant of a large online bookshop. ".repeat(30); // ~1.7 KB > --key-bytes
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Starts `silica route ARGS` on a free port; resolves once it listens.
async function startRouter(args) {
  const proc = spawn(BIN, ["route", "--listen", "127.0.0.1:0", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "", err = "";
  proc.stderr.on("data", (d) => { err += d; });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("router did not start:\n" + err)), 10000);
    proc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/[^:]+:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    proc.on("exit", (code) => { clearTimeout(timer); reject(new Error(`router exited (${code}):\n${err}`)); });
  });
  return {
    url: `http://127.0.0.1:${port}`, proc, log: () => err,
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      const done = new Promise((r) => proc.on("exit", (code, sig) => r(code ?? sig)));
      proc.kill("SIGTERM");
      return done;
    },
  };
}

async function waitHealth(url, pred, ms = 10000) {
  const t0 = Date.now();
  for (;;) {
    const h = await (await fetch(url + "/health")).json();
    if (pred(h)) return h;
    if (Date.now() - t0 > ms) throw new Error("router health never matched: " + JSON.stringify(h));
    await sleep(50);
  }
}

let nodes = [], router, client, model;
const procs = [];

before(async () => {
  model = tinyModel();
  nodes = [await startServer({ models: { tiny: model }, args: NODE_ARGS }),
           await startServer({ models: { tiny: model }, args: NODE_ARGS })];
  router = await startRouter(["--backend", nodes[0].url, "--backend", nodes[1].url, "--health-interval", "0.2",
    "--health-timeout", "3"]);
  procs.push(router);
  await waitHealth(router.url, (h) => h.backends_up === 2);
  client = new OpenAI({ baseURL: router.url + "/v1", apiKey: "none", maxRetries: 0 });
});

after(async () => {
  for (const p of procs) assert.equal(await p.stop(), 0, p.log()); // a clean exit on SIGTERM, mid-connection or not
  for (const n of nodes) await n.stop();
});

// A chat completion through the router: { data, backend } (the node that
// answered, from the router's X-Silica-Backend header).
async function chat(params, c = client) {
  const { data, response } = await c.chat.completions.create({ model: "tiny", max_tokens: 4, ...params }).withResponse();
  return { data, backend: response.headers.get("x-silica-backend") };
}
const nodeOf = (backend) => nodes.findIndex((n) => n.url === backend);
const prompts = Array.from({ length: 40 }, (_, i) => `Question number ${i}: what is ${i} times ${i + 3}?`);

test("the same long system prompt goes to one node, and its second request reads that node's cache", async () => {
  const a = await chat({ messages: [{ role: "system", content: SYS }, { role: "user", content: "Where is my order?" }] });
  const b = await chat({ messages: [{ role: "system", content: SYS }, { role: "user", content: "Do you ship to Chile?" }] });
  const c = await chat({ messages: [{ role: "system", content: SYS }, { role: "user", content: "Can I pay by card?" }] });
  assert.ok(nodeOf(a.backend) >= 0, a.backend);
  assert.equal(b.backend, a.backend);
  assert.equal(c.backend, a.backend);
  const cached = b.data.usage.prompt_tokens_details.cached_tokens;
  assert.ok(cached > 0 && cached < b.data.usage.prompt_tokens, `cached_tokens ${cached}`);
  assert.ok(c.data.usage.prompt_tokens_details.cached_tokens >= cached);
  // The other node never saw the system prompt: the same request sent to
  // it directly computes everything.
  const other = nodes[1 - nodeOf(a.backend)];
  const direct = new OpenAI({ baseURL: other.url + "/v1", apiKey: "none", maxRetries: 0 });
  const d = await direct.chat.completions.create({ model: "tiny", max_tokens: 4,
    messages: [{ role: "system", content: SYS }, { role: "user", content: "Is there a shop in Lyon?" }] });
  assert.equal(d.usage.prompt_tokens_details.cached_tokens, 0);
});

test("a multi-turn conversation stays on the node of its first turn", async () => {
  const first = [{ role: "system", content: "Be brief." }, { role: "user", content: "Tell me about owls." }];
  const a = await chat({ messages: first });
  const b = await chat({ messages: [...first, { role: "assistant", content: a.data.choices[0].message.content || "?" },
    { role: "user", content: "And about hawks?" }] });
  assert.equal(b.backend, a.backend);
  assert.ok(b.data.usage.prompt_tokens_details.cached_tokens > 0);
});

let placement; // prompt -> node index, from the spread test (the failover test compares)

test("different prompts spread over both nodes, each prompt always to the same node", async () => {
  const before0 = await metrics(nodes[0].url), before1 = await metrics(nodes[1].url);
  placement = [];
  for (const p of prompts) placement.push(nodeOf((await chat({ messages: [{ role: "user", content: p }] })).backend));
  const on0 = placement.filter((n) => n === 0).length;
  assert.ok(on0 >= 8 && on0 <= 32, `${on0} of ${prompts.length} on node 0`);
  // the nodes' own counters agree with the router's header
  const after0 = await metrics(nodes[0].url), after1 = await metrics(nodes[1].url);
  assert.equal(after0.silica_sequences_submitted_total - before0.silica_sequences_submitted_total, on0);
  assert.equal(after1.silica_sequences_submitted_total - before1.silica_sequences_submitted_total, prompts.length - on0);
  // same prompt, same node
  for (const i of [0, 7, 13, 21, 39])
    assert.equal(nodeOf((await chat({ messages: [{ role: "user", content: prompts[i] }] })).backend), placement[i]);
  // and the router counts them per backend
  const m = await metrics(router.url);
  assert.ok(m[`silica_router_backend_requests_total{backend="${nodes[0].url}"}`] >= on0);
  assert.equal(m[`silica_router_backend_up{backend="${nodes[1].url}"}`], 1);
  // nothing is in flight any more (every path gives its count back)
  for (const n of nodes) assert.equal(m[`silica_router_backend_inflight{backend="${n.url}"}`], 0);
});

test("prompt_cache_key: one key, one node, whatever the prompt; accepted by chat, completions and responses", async () => {
  const seen = new Set();
  for (const p of prompts.slice(0, 8)) seen.add((await chat({ messages: [{ role: "user", content: p }], prompt_cache_key: "tenant-7" })).backend);
  assert.equal(seen.size, 1);
  const { response: r1 } = await client.completions.create({ model: "tiny", prompt: "Hello", max_tokens: 2,
    prompt_cache_key: "tenant-7" }).withResponse();
  assert.equal(r1.headers.get("x-silica-backend"), [...seen][0]);
  const { data, response: r2 } = await client.responses.create({ model: "tiny", input: "Hi", max_output_tokens: 2,
    prompt_cache_key: "tenant-7" }).withResponse();
  assert.equal(data.status === "completed" || data.status === "incomplete", true);
  assert.equal(r2.headers.get("x-silica-backend"), [...seen][0]);
  // the nodes check its type as OpenAI does
  for (const route of ["chat.completions", "completions", "responses"]) {
    const [a, b] = route.split(".");
    const api = b ? client[a][b] : client[a];
    const args = route === "responses" ? { input: "Hi", max_output_tokens: 2 }
      : route === "completions" ? { prompt: "Hi", max_tokens: 2 } : { messages: [{ role: "user", content: "Hi" }], max_tokens: 2 };
    await assert.rejects(api.create({ model: "tiny", ...args, prompt_cache_key: 7 }),
      (e) => e.status === 400 && e.param === "prompt_cache_key", route);
  }
});

test("stored responses: follow-ups and GET /v1/responses/{id} reach the node that holds them", async () => {
  // Every follow-up has the same input, so by its own key each would go to
  // one node; half of the first responses live on the other.
  const seen = new Set();
  for (let i = 0; i < 8; i++) {
    const stream = i % 2 === 1;
    const first = stream
      ? await (async () => {
        let id = null;
        for await (const ev of await client.responses.create({ model: "tiny", input: prompts[i], max_output_tokens: 3, stream: true }))
          if (ev.response?.id) id = ev.response.id;
        return { id };
      })()
      : await client.responses.create({ model: "tiny", input: prompts[i], max_output_tokens: 3 });
    assert.match(first.id, /^resp_/);
    const { data: next, response } = await client.responses.create({ model: "tiny", previous_response_id: first.id,
      input: "Tell me more.", max_output_tokens: 3 }).withResponse();
    assert.equal(next.previous_response_id, first.id);
    seen.add(response.headers.get("x-silica-backend"));
    const got = await client.responses.retrieve(first.id);
    assert.equal(got.id, first.id);
    const items = await client.responses.inputItems.list(first.id);
    assert.ok(items.data.length >= 1);
  }
  assert.equal(seen.size, 2, "follow-ups pinned to both nodes");
  assert.ok((await metrics(router.url)).silica_router_pinned_total >= 24);
});

test("streaming through the router equals the node's own answer and arrives as it is made", async () => {
  const params = { model: "tiny", prompt: "Once upon a time", max_tokens: 48, temperature: 0.8, seed: 3, logit_bias: NO_EOS };
  const direct = new OpenAI({ baseURL: nodes[0].url + "/v1", apiKey: "none", maxRetries: 0 });
  const want = (await direct.completions.create(params)).choices[0].text;
  let text = "", chunks = 0;
  for await (const c of await client.completions.create({ ...params, stream: true })) {
    text += c.choices[0]?.text || "";
    chunks++;
  }
  assert.equal(text, want);
  assert.ok(chunks > 10, `${chunks} chunks`);
  // Read the raw body: the SSE events come in many reads, the first long
  // before the last (a buffering proxy gives one read at the end).
  const r = await fetch(router.url + "/v1/completions", { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...params, max_tokens: 300, stream: true }) });
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /text\/event-stream/);
  const reader = r.body.getReader();
  const times = [];
  let body = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    times.push(Date.now());
    body += Buffer.from(value).toString();
  }
  assert.match(body, /data: \[DONE\]/);
  assert.ok(times.length >= 3, `${times.length} reads`);
  assert.ok(times.at(-1) > times[0], "all in one burst");
});

test("a client that aborts a stream cancels the generation on the node", async () => {
  const params = { messages: [{ role: "user", content: "Tell me a very long story." }], max_tokens: 900, logit_bias: NO_EOS,
    stream: true };
  const { data: stream, response } = await client.chat.completions.create({ model: "tiny", ...params }).withResponse();
  const node = nodes[nodeOf(response.headers.get("x-silica-backend"))];
  const before = await metrics(node.url);
  let n = 0;
  for await (const c of stream) { if (++n === 3) break; } // break aborts the HTTP request
  const h = await waitIdle(node.url, 5000);
  assert.equal(h.running_sequences, 0);
  const m = await metrics(node.url);
  assert.equal(m.silica_running_sequences, 0);
  assert.equal(m.silica_sequences_cancelled_total, before.silica_sequences_cancelled_total + 1);
  // a non-streamed request whose client gives up is cancelled too
  const ac = new AbortController();
  const p = fetch(router.url + "/v1/completions", { method: "POST", signal: ac.signal, headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", prompt: "Once upon a time", max_tokens: 900, logit_bias: NO_EOS }) }).catch(() => null);
  await sleep(150);
  ac.abort();
  await p;
  for (const nd of nodes) await waitIdle(nd.url, 5000);
  const total = (await metrics(nodes[0].url)).silica_sequences_cancelled_total + (await metrics(nodes[1].url)).silica_sequences_cancelled_total;
  assert.ok(total >= m.silica_sequences_cancelled_total + 1);
  assert.equal((await metrics(router.url)).silica_router_active_requests, 0);
});

test("--spill: a busy affinity node passes the next request with its key to the other node", async () => {
  const r5 = await startRouter(["--backend", nodes[0].url, "--backend", nodes[1].url, "--spill", "1"]);
  try {
    await waitHealth(r5.url, (h) => h.backends_up === 2);
    const c5 = new OpenAI({ baseURL: r5.url + "/v1", apiKey: "none", maxRetries: 0 });
    const params = { model: "tiny", messages: [{ role: "system", content: SYS }, { role: "user", content: "Long answer please." }],
      max_tokens: 600, logit_bias: NO_EOS, stream: true };
    // one at a time, each still running when the next is routed
    const open = [];
    for (let i = 0; i < 3; i++) open.push(await c5.chat.completions.create(params).withResponse());
    const where = open.map((o) => o.response.headers.get("x-silica-backend"));
    for (const o of open) o.data.controller.abort();
    // in flight 0 → the affinity node; 1 (within 1 of the idle node) → it again; 2 → the other
    assert.equal(where[1], where[0]);
    assert.notEqual(where[2], where[0]);
    assert.equal((await metrics(r5.url)).silica_router_spilled_total, 1);
    for (const nd of nodes) await waitIdle(nd.url, 5000);
  } finally {
    assert.equal(await r5.stop(), 0, r5.log());
  }
});

test("a node's own errors pass through unchanged; invalid JSON reaches a node", async () => {
  for (const body of ["{not json", JSON.stringify({ model: "tiny" }), JSON.stringify({ model: "nope", messages: [] })]) {
    const via = await fetch(router.url + "/v1/chat/completions", { method: "POST", headers: { "content-type": "application/json" }, body });
    const direct = await fetch(nodes[0].url + "/v1/chat/completions", { method: "POST", headers: { "content-type": "application/json" }, body });
    assert.equal(via.status, direct.status);
    assert.ok(via.status >= 400 && via.status < 500);
    assert.deepEqual(await via.json(), await direct.json());
  }
  // unknown routes and methods: the node's 404 / 405
  const r = await fetch(router.url + "/v1/nothing?x=1");
  assert.equal(r.status, 404);
  assert.match((await r.json()).error.message, /\/v1\/nothing/);
});

test("auth: the node's 401 passes through; a key in Authorization or x-api-key reaches it", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "silica-router-"));
  const authNode = await startServer({ models: { tiny: model }, args: ["--data", dir, "--no-console"] });
  const r2 = await startRouter(["--backend", authNode.url]);
  try {
    const key = (authNode.stdout().match(/\b(sk-[0-9A-Za-z]{48})\b/) || [])[1];
    assert.ok(key);
    const body = JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 2 });
    const opts = (h) => ({ method: "POST", headers: { "content-type": "application/json", ...h }, body });
    for (const h of [{}, { authorization: "Bearer sk-wrong" }]) {
      const via = await fetch(r2.url + "/v1/chat/completions", opts(h));
      const direct = await fetch(authNode.url + "/v1/chat/completions", opts(h));
      assert.equal(via.status, 401);
      assert.equal(via.status, direct.status);
      assert.deepEqual(await via.json(), await direct.json());
    }
    const sdk = new OpenAI({ baseURL: r2.url + "/v1", apiKey: "sk-wrong", maxRetries: 0 });
    await assert.rejects(sdk.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hi" }] }),
      (e) => e.status === 401);
    const ok = new OpenAI({ baseURL: r2.url + "/v1", apiKey: key, maxRetries: 0 });
    const c = await ok.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 2 });
    assert.equal(c.object, "chat.completion");
    const x = await fetch(r2.url + "/v1/chat/completions", opts({ "x-api-key": key }));
    assert.equal(x.status, 200);
  } finally {
    assert.equal(await r2.stop(), 0, r2.log());
    await authNode.stop();
  }
});

test("limits and the router's own routes", async () => {
  const r3 = await startRouter(["--backend", nodes[0].url, "--max-body", "4096", "--no-backend-header"]);
  try {
    const plain = await fetch(r3.url + "/v1/models");
    assert.equal(plain.status, 200);
    assert.equal(plain.headers.get("x-silica-backend"), null);
    assert.equal((await plain.json()).data[0].id, "tiny");
    const big = await fetch(r3.url + "/v1/completions", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", prompt: "x".repeat(5000) }) });
    assert.equal(big.status, 413);
    assert.equal((await big.json()).error.code, "request_too_large");
    // headers past 16 KiB are refused by the router itself, as by a node
    const huge = await fetch(r3.url + "/v1/models", { headers: { "x-pad": "a".repeat(20000) } }).catch(() => null);
    assert.ok(huge === null || (huge.status >= 400 && huge.status < 500 && !huge.headers.get("x-silica-backend")));
    const h = await (await fetch(r3.url + "/health")).json();
    assert.equal(h.status, "ok");
    assert.equal(h.backends[0].up, true); // the node was never asked, so never marked down
    assert.equal(h.backends[0].url, nodes[0].url);
  } finally {
    assert.equal(await r3.stop(), 0, r3.log());
  }
  // every backend down: 503 in OpenAI's shape
  const r4 = await startRouter(["--backend", "http://127.0.0.1:9"]);
  try {
    const down = new OpenAI({ baseURL: r4.url + "/v1", apiKey: "none", maxRetries: 0 });
    await assert.rejects(down.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hi" }] }),
      (e) => e.status === 503 && e.code === "no_backend_available" && e.type === "server_error");
    const h = await fetch(r4.url + "/health");
    assert.equal(h.status, 503);
  } finally {
    assert.equal(await r4.stop(), 0, r4.log());
  }
  // a node that takes a request and drops the connection: a 502, not tried
  // on another node (it might crash that one too), not marked down
  const dropper = http.createServer((req, res) => {
    if (req.url === "/health") res.end(JSON.stringify({ status: "ok", models: ["tiny"] }));
    else req.socket.destroy();
  });
  await new Promise((r) => dropper.listen(0, "127.0.0.1", r));
  const dropUrl = `http://127.0.0.1:${dropper.address().port}`;
  const r8 = await startRouter(["--backend", dropUrl]);
  try {
    const res = await fetch(r8.url + "/v1/chat/completions", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }] }) });
    assert.equal(res.status, 502);
    assert.equal((await res.json()).error.code, "backend_closed");
    const m = await metrics(r8.url);
    assert.equal(m.silica_router_retries_total, 0);
    assert.equal(m[`silica_router_backend_up{backend="${dropUrl}"}`], 1);
  } finally {
    assert.equal(await r8.stop(), 0, r8.log());
    dropper.close();
  }
  for (const bad of [["--backend", "https://x:1"], ["--backend", "http://x:1/v1"], []]) {
    const p = spawn(BIN, ["route", "--listen", "127.0.0.1:0", ...bad], { stdio: "ignore" });
    assert.notEqual(await new Promise((r) => p.on("exit", r)), 0, bad.join(" "));
  }
});

test("nodes serving different models: each request goes to a node that serves its model", async () => {
  const third = await startServer({ models: { other: model }, args: NODE_ARGS });
  const r7 = await startRouter(["--backend", nodes[0].url, "--backend", nodes[1].url, "--backend", third.url,
    "--health-interval", "0.2", "--health-timeout", "3"]);
  try {
    // the models are learned from each node's /health
    const h = await waitHealth(r7.url, (x) => x.backends.every((b) => b.models === 1));
    assert.equal(h.backends_up, 3);
    const c7 = new OpenAI({ baseURL: r7.url + "/v1", apiKey: "none", maxRetries: 0 });
    const seen = { tiny: new Set(), other: new Set() };
    for (const p of prompts.slice(0, 12)) {
      for (const m of ["tiny", "other"]) {
        const { data, response } = await c7.chat.completions.create({ model: m, messages: [{ role: "user", content: p }],
          max_tokens: 2 }).withResponse();
        assert.equal(data.model, m);
        seen[m].add(response.headers.get("x-silica-backend"));
      }
    }
    // a keyless request (no prompt to key on) with a model: a node that has it
    for (let i = 0; i < 6; i++) {
      const r = await fetch(r7.url + "/v1/messages/count_tokens", { method: "POST",
        headers: { "content-type": "application/json", "anthropic-version": "2023-06-01" },
        body: JSON.stringify({ model: "other", messages: [{ role: "user", content: "Hello" }] }) });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get("x-silica-backend"), third.url);
      assert.ok((await r.json()).input_tokens > 0);
    }
    assert.deepEqual([...seen.other], [third.url]);
    assert.ok(!seen.tiny.has(third.url));
    assert.equal(seen.tiny.size, 2);
    // a model no node serves: a node's own 404
    await assert.rejects(c7.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "x" }] }),
      (e) => e.status === 404 && e.code === "model_not_found");
  } finally {
    assert.equal(await r7.stop(), 0, r7.log());
    await third.stop();
  }
});

test("IPv6: a node on [::1] behind a router listening on [::1]", async () => {
  const proc = spawn(BIN, ["serve", "--model", `tiny=${model}`, "--host", "::1", "--port", "0", ...NODE_ARGS],
    { stdio: ["ignore", "pipe", "pipe"] });
  try {
    const port = await new Promise((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error("no IPv6 node")), 15000);
      proc.stdout.on("data", (d) => {
        out += d;
        const m = out.match(/listening on http:\/\/\[?::1\]?:(\d+)/);
        if (m) { clearTimeout(timer); resolve(Number(m[1])); }
      });
      proc.on("exit", (code) => { clearTimeout(timer); reject(new Error(`node exited (${code})`)); });
    });
    const r9 = spawn(BIN, ["route", "--listen", "[::1]:0", "--backend", `http://[::1]:${port}/`], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      const rport = await new Promise((resolve, reject) => {
        let out = "";
        const timer = setTimeout(() => reject(new Error("no IPv6 router")), 10000);
        r9.stdout.on("data", (d) => {
          out += d;
          const m = out.match(/listening on http:\/\/\[::1\]:(\d+)/);
          if (m) { clearTimeout(timer); resolve(Number(m[1])); }
        });
      });
      const res = await fetch(`http://[::1]:${rport}/v1/models`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-silica-backend"), `http://[::1]:${port}`);
      assert.equal((await res.json()).data[0].id, "tiny");
    } finally {
      r9.kill("SIGTERM");
    }
  } finally {
    proc.kill("SIGTERM");
  }
});

test("SIGTERM drains: new connections refused, a stream in flight runs to its end, then exit 0", async () => {
  const r6 = await startRouter(["--backend", nodes[0].url, "--backend", nodes[1].url, "--drain", "300"]);
  await waitHealth(r6.url, (h) => h.backends_up === 2);
  const r = await fetch(r6.url + "/v1/completions", { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", prompt: "Once", max_tokens: 900, logit_bias: NO_EOS, stream: true }) });
  const reader = r.body.getReader();
  let body = Buffer.from((await reader.read()).value).toString();
  const exited = new Promise((res) => r6.proc.on("exit", (code) => res(code)));
  r6.proc.kill("SIGTERM");
  const port = Number(new URL(r6.url).port);
  const tryConnect = () => new Promise((res) => {
    const sock = net.connect(port, "127.0.0.1");
    sock.on("connect", () => { sock.destroy(); res(false); });
    sock.on("error", (e) => res(e.code === "ECONNREFUSED"));
  });
  let refused = false;
  for (let t0 = Date.now(); !refused && Date.now() - t0 < 3000; await sleep(20)) refused = await tryConnect();
  assert.ok(refused, "still accepting");
  assert.equal(r6.proc.exitCode, null, "exited before the stream ended");
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    body += Buffer.from(value).toString();
  }
  assert.match(body, /"finish_reason":"length"/);
  assert.match(body, /data: \[DONE\]\n\n$/);
  assert.equal(await exited, 0, r6.log());
  assert.match(r6.log(), /draining 1 requests/);
});

test("a node dies: its requests go to the other; it returns and gets its keys back", async () => {
  // a second router that checks health only at start: it must find the
  // dead node by the refused connection and retry on the other
  const lazy = await startRouter(["--backend", nodes[0].url, "--backend", nodes[1].url, "--health-interval", "600"]);
  procs.push(lazy);
  await waitHealth(lazy.url, (h) => h.backends_up === 2);
  const lazyClient = new OpenAI({ baseURL: lazy.url + "/v1", apiKey: "none", maxRetries: 0 });
  const i0 = placement.indexOf(0);
  assert.ok(i0 >= 0);
  assert.equal(nodeOf((await chat({ messages: [{ role: "user", content: prompts[i0] }] }, lazyClient)).backend), 0);
  const port = nodes[0].port;
  assert.ok((await nodes[0].stop()) !== null);
  const viaLazy = await chat({ messages: [{ role: "user", content: prompts[i0] }] }, lazyClient);
  assert.equal(nodeOf(viaLazy.backend), 1);
  const lm = await metrics(lazy.url);
  assert.ok(lm.silica_router_retries_total >= 1);
  assert.equal(lm[`silica_router_backend_up{backend="${nodes[0].url}"}`], 0);
  // the main router: every prompt answered, all by node 1
  for (const p of prompts.slice(0, 10)) assert.equal(nodeOf((await chat({ messages: [{ role: "user", content: p }] })).backend), 1);
  // node 0 comes back on its port: the health checks see it, its keys return
  nodes[0] = await startServer({ models: { tiny: model }, args: [...NODE_ARGS.filter((a) => a !== "--port"), "--port", String(port)] });
  assert.equal(nodes[0].port, port);
  await waitHealth(router.url, (h) => h.backends_up === 2);
  const back = [];
  for (const p of prompts) back.push(nodeOf((await chat({ messages: [{ role: "user", content: p }] })).backend));
  assert.deepEqual(back, placement);
  const m = await metrics(router.url);
  for (const n of nodes) assert.equal(m[`silica_router_backend_inflight{backend="${n.url}"}`], 0);
  assert.equal(m.silica_router_active_requests, 0);
});
