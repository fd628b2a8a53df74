// The Files and Batch APIs through the official openai SDK against
// `silica serve --data DIR`: upload a JSONL file, create a batch, poll it
// to completed, download the output; each line equals the same request
// made directly (temperature 0) and carries its custom_id; every request
// is one ledger row at the batch price, marked with its batch; accounts
// see only their own files and batches; cancel; an invalid file fails the
// batch with OpenAI's error codes and lines; a balance that cannot pay
// fails the requests with the route's own error; hostile uploads are 4xx;
// a server killed mid-batch resumes after a restart and bills each
// request once.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import OpenAI, { toFile } from "openai";
import { BIN, makeModel, startServer, tinyModel } from "./lib/server.mjs";
import { adminCli } from "./lib/admin.mjs";

let dir, srv;
// a chat model and a BERT embedding model (CLS pooling)
const models = () => ({ tiny: tinyModel(), emb: makeModel("tests/data/tokenizer/bert-uncased", "bert") });
const acct = {};


const { admin, newAccount } = adminCli(() => ["--data", dir]);

const client = (key) => new OpenAI({ baseURL: srv.url + "/v1", apiKey: key, maxRetries: 0 });

// Ledger rows of an account: {id, batch, prompt, completion, cost (micro-yuan)}.
function ledger(account) {
  const out = admin("usage", "--by", "request,batch", "--format", "csv", "--account", String(account));
  return out.trim().split("\n").slice(1).filter(Boolean).map((l) => {
    const c = l.split(",");
    return { id: c[0], batch: c[1], prompt: Number(c[3]), completion: Number(c[5]),
      cost: Math.round(Number(c[8]) * 1e6) };
  });
}

const line = (custom_id, body, url = "/v1/chat/completions") =>
  JSON.stringify({ custom_id, method: "POST", url, body });

async function upload(c, lines, name = "in.jsonl") {
  return c.files.create({ file: await toFile(Buffer.from(lines.join("\n") + "\n"), name), purpose: "batch" });
}

async function poll(c, id, until = ["completed", "failed", "expired", "cancelled"], ms = 60000) {
  const t0 = Date.now();
  for (;;) {
    const b = await c.batches.retrieve(id);
    if (until.includes(b.status)) return b;
    if (Date.now() - t0 > ms) throw new Error("batch stuck: " + JSON.stringify(b));
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function jsonl(c, fileId) {
  const text = await (await c.files.content(fileId)).text();
  return text.trim().split("\n").map((l) => JSON.parse(l));
}

// 100 yuan per million tokens in and out: 100 micro-yuan a token, 50 in a batch.
const PRICE = 100, BATCH_PRICE = 50;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "silica-batch-e2e-"));
  for (const n of ["alice", "bob", "carol", "poor"]) acct[n] = newAccount(n);
  admin("accounts", "credit", String(acct.poor.id), "--gift", "-14");
  admin("models", "set-price", "tiny", "--input", String(PRICE), "--output", String(PRICE));
  srv = await startServer({ models: models(), args: ["--data", dir, "--ctx", "512"] });
});

after(async () => {
  if (srv) await srv.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const prompts = ["Hello there", "What is 2+2?", "Name a colour", "Tell me a joke", "Count to five"];

test("a chat batch equals the same requests made directly, billed once each at the batch price", async () => {
  const c = client(acct.alice.key);
  const bodies = prompts.map((p, i) => ({ model: "tiny", messages: [{ role: "user", content: p }],
    max_tokens: 6 + i, temperature: 0 }));
  const f = await upload(c, bodies.map((b, i) => line(`req-${i}`, b)));
  assert.equal(f.object, "file");
  assert.equal(f.purpose, "batch");
  assert.equal((await c.files.retrieve(f.id)).bytes, f.bytes);
  const created = await c.batches.create({ input_file_id: f.id, endpoint: "/v1/chat/completions",
    completion_window: "24h", metadata: { job: "e2e" } });
  assert.equal(created.object, "batch");
  assert.equal(created.status, "validating");
  assert.equal(created.expires_at - created.created_at, 24 * 3600);
  assert.deepEqual(created.metadata, { job: "e2e" });
  const b = await poll(c, created.id);
  assert.equal(b.status, "completed", JSON.stringify(b));
  assert.deepEqual(b.request_counts, { total: 5, completed: 5, failed: 0 });
  assert.equal(b.error_file_id, null);
  for (const k of ["in_progress_at", "finalizing_at", "completed_at"]) assert.ok(b[k] >= b.created_at, k);
  for (const k of ["failed_at", "expired_at", "cancelling_at", "cancelled_at"]) assert.equal(b[k], null, k);
  const out = await jsonl(c, b.output_file_id);
  assert.equal(out.length, 5);
  assert.equal((await c.files.retrieve(b.output_file_id)).purpose, "batch_output");
  const before = ledger(acct.alice.id).length;
  for (let i = 0; i < 5; i++) {
    const o = out[i];
    assert.equal(o.custom_id, `req-${i}`);
    assert.match(o.id, /^batch_req_/);
    assert.equal(o.error, null);
    assert.equal(o.response.status_code, 200);
    const direct = await c.chat.completions.create(bodies[i]);
    assert.deepEqual(o.response.body.choices, JSON.parse(JSON.stringify(direct.choices)));
    assert.deepEqual(o.response.body.usage, JSON.parse(JSON.stringify(direct.usage)));
    assert.equal(o.response.body.object, "chat.completion");
  }
  const rows = ledger(acct.alice.id);
  assert.equal(rows.length, before + 5); // the direct requests
  const batchRows = rows.filter((r) => r.batch === b.id);
  assert.equal(batchRows.length, 5);
  for (const o of out) {
    const r = batchRows.find((x) => x.id === o.response.request_id);
    assert.ok(r, "ledger row for " + o.custom_id);
    const u = o.response.body.usage;
    assert.equal(r.prompt, u.prompt_tokens);
    assert.equal(r.completion, u.completion_tokens);
    assert.equal(r.cost, BATCH_PRICE * (u.prompt_tokens + u.completion_tokens));
  }
  for (const r of rows.filter((x) => x.batch === ""))
    assert.equal(r.cost, PRICE * (r.prompt + r.completion));
  const v = spawnSync(BIN, ["admin", "--data", dir, "verify"], { encoding: "utf8" });
  assert.equal(v.status, 0, v.stderr);
});

test("a completions batch; requests the route refuses land in the error file with its error", async () => {
  const c = client(acct.alice.key);
  const body = { model: "tiny", prompt: "Once upon a time", max_tokens: 8, temperature: 0 };
  const hot = { ...body, temperature: 5 };
  const f = await upload(c, [line("only", body, "/v1/completions"), line("hot", hot, "/v1/completions"),
    line("stream", { ...body, stream: true }, "/v1/completions")]);
  const b = await poll(c, (await c.batches.create({ input_file_id: f.id, endpoint: "/v1/completions",
    completion_window: "24h" })).id);
  assert.equal(b.status, "completed");
  assert.deepEqual(b.request_counts, { total: 3, completed: 1, failed: 2 });
  const [o] = await jsonl(c, b.output_file_id);
  const direct = await c.completions.create(body);
  assert.equal(o.custom_id, "only");
  assert.equal(o.response.body.choices[0].text, direct.choices[0].text);
  const errs = await jsonl(c, b.error_file_id);
  assert.deepEqual(errs.map((e) => e.custom_id), ["hot", "stream"]);
  let routeErr;
  try { await c.completions.create(hot); } catch (e) { routeErr = e; }
  assert.equal(errs[0].response.status_code, routeErr.status);
  assert.equal(errs[0].response.body.error.param, routeErr.param);
  assert.equal(errs[0].response.body.error.message, routeErr.error.message);
  assert.equal(errs[1].response.status_code, 400);
  assert.equal(errs[1].response.body.error.param, "stream");
  // refused before any compute: no ledger rows for them
  assert.equal(ledger(acct.alice.id).filter((r) => r.batch === b.id).length, 1);
});

test("an embeddings batch equals the same requests made directly", async () => {
  const c = client(acct.alice.key);
  const inputs = ["the quick brown fox", ["two inputs", "in one request"], "jumps over the lazy dog"];
  const bodies = inputs.map((input) => ({ model: "emb", input, encoding_format: "float" }));
  const f = await upload(c, bodies.map((b, i) => line(`e${i}`, b, "/v1/embeddings")));
  const b = await poll(c, (await c.batches.create({ input_file_id: f.id, endpoint: "/v1/embeddings",
    completion_window: "24h" })).id);
  assert.equal(b.status, "completed", JSON.stringify(b));
  const out = await jsonl(c, b.output_file_id);
  assert.deepEqual(out.map((o) => o.custom_id), ["e0", "e1", "e2"]);
  for (let i = 0; i < 3; i++) {
    const direct = await c.embeddings.create(bodies[i]);
    assert.deepEqual(out[i].response.body.data, JSON.parse(JSON.stringify(direct.data)));
    assert.deepEqual(out[i].response.body.usage, JSON.parse(JSON.stringify(direct.usage)));
  }
  const rows = ledger(acct.alice.id).filter((r) => r.batch === b.id);
  assert.equal(rows.length, 3);
  // a chat model is not an embedding model: the batch fails validation
  const g = await upload(c, [line("x", { model: "tiny", input: "hi" }, "/v1/embeddings")]);
  const bad = await poll(c, (await c.batches.create({ input_file_id: g.id, endpoint: "/v1/embeddings",
    completion_window: "24h" })).id);
  assert.equal(bad.status, "failed");
  assert.equal(bad.errors.data[0].code, "model_not_found");
});

test("files and batches are the account's own: another account's ids are 404", async () => {
  const a = client(acct.alice.key), b = client(acct.bob.key);
  const f = await upload(a, [line("x", { model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 2 })]);
  const batch = await a.batches.create({ input_file_id: f.id, endpoint: "/v1/chat/completions",
    completion_window: "24h" });
  await assert.rejects(b.files.retrieve(f.id), (e) => e.status === 404);
  await assert.rejects(b.files.content(f.id), (e) => e.status === 404);
  await assert.rejects(b.files.delete(f.id), (e) => e.status === 404);
  await assert.rejects(b.batches.retrieve(batch.id), (e) => e.status === 404);
  await assert.rejects(b.batches.cancel(batch.id), (e) => e.status === 404);
  await assert.rejects(b.batches.create({ input_file_id: f.id, endpoint: "/v1/chat/completions",
    completion_window: "24h" }), (e) => e.status === 404);
  const bobFiles = [];
  for await (const x of b.files.list()) bobFiles.push(x.id);
  assert.ok(!bobFiles.includes(f.id));
  const bobBatches = [];
  for await (const x of b.batches.list()) bobBatches.push(x.id);
  assert.ok(!bobBatches.includes(batch.id));
  const aliceBatches = [];
  for await (const x of a.batches.list({ limit: 2 })) aliceBatches.push(x.id); // pages through `after`
  assert.ok(aliceBatches.includes(batch.id));
  assert.equal(new Set(aliceBatches).size, aliceBatches.length);
  await poll(a, batch.id);
  // delete: gone for its owner too
  const del = await a.files.delete(f.id);
  assert.deepEqual(del, { id: f.id, object: "file", deleted: true });
  await assert.rejects(a.files.retrieve(f.id), (e) => e.status === 404);
});

test("an invalid input file fails the batch with OpenAI's codes and lines", async () => {
  const c = client(acct.carol.key);
  const ok = { model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 2 };
  const f = await upload(c, [
    line("a", ok),
    "{not json",
    line("a", ok),
    line("c", ok, "/v1/completions"),
    line("d", { ...ok, model: "no-such-model" }),
    JSON.stringify({ method: "POST", url: "/v1/chat/completions", body: ok }),
  ]);
  const b = await poll(c, (await c.batches.create({ input_file_id: f.id, endpoint: "/v1/chat/completions",
    completion_window: "24h" })).id);
  assert.equal(b.status, "failed");
  assert.ok(b.failed_at);
  assert.equal(b.output_file_id, null);
  const errs = b.errors.data.map((e) => [e.code, e.line]);
  assert.deepEqual(errs, [["invalid_json_line", 2], ["duplicate_custom_id", 3], ["url_mismatch", 4],
    ["model_not_found", 5], ["missing_required_parameter", 6]]);
  assert.equal(b.errors.object, "list");
  const empty = await c.files.create({ file: await toFile(Buffer.from("\n\n"), "e.jsonl"), purpose: "batch" });
  const b2 = await poll(c, (await c.batches.create({ input_file_id: empty.id, endpoint: "/v1/chat/completions",
    completion_window: "24h" })).id);
  assert.equal(b2.status, "failed");
  assert.equal(b2.errors.data[0].code, "empty_file");
  // refused at creation
  await assert.rejects(c.batches.create({ input_file_id: f.id, endpoint: "/v1/chat/completions",
    completion_window: "1h" }), (e) => e.status === 400 && e.param === "completion_window");
  await assert.rejects(c.batches.create({ input_file_id: "file-nope", endpoint: "/v1/chat/completions",
    completion_window: "24h" }), (e) => e.status === 404);
  await assert.rejects(c.batches.create({ input_file_id: f.id, endpoint: "/v1/moderations",
    completion_window: "24h" }), (e) => e.status === 400 && e.param === "endpoint");
});

test("without balance each request fails with the route's own error", async () => {
  const c = client(acct.poor.key);
  const body = { model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 4 };
  let routeErr;
  try { await c.chat.completions.create(body); } catch (e) { routeErr = e; }
  assert.equal(routeErr.status, 403);
  const f = await upload(c, [line("p1", body), line("p2", body)]);
  const b = await poll(c, (await c.batches.create({ input_file_id: f.id, endpoint: "/v1/chat/completions",
    completion_window: "24h" })).id);
  assert.equal(b.status, "completed");
  assert.deepEqual(b.request_counts, { total: 2, completed: 0, failed: 2 });
  assert.equal(b.output_file_id, null);
  const errs = await jsonl(c, b.error_file_id);
  assert.deepEqual(errs.map((e) => e.custom_id), ["p1", "p2"]);
  for (const e of errs) {
    assert.equal(e.response.status_code, 403);
    assert.equal(e.response.body.error.code, routeErr.code);
    assert.equal(e.response.body.error.type, routeErr.type);
  }
  assert.equal(ledger(acct.poor.id).length, 0);
});

test("hostile and oversized uploads are clear 4xx", async () => {
  const url = srv.url + "/v1/files";
  const auth = { authorization: "Bearer " + acct.bob.key };
  const post = (body, ct) => fetch(url, { method: "POST", body, headers: { ...auth, "content-type": ct } });
  const cases = [
    ["{}", "application/json"],
    ["--XX\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc", "multipart/form-data; boundary=XX"],
    ["--XX\r\n\r\nabc\r\n--XX--", "multipart/form-data; boundary=XX"],
    ["garbage", "multipart/form-data; boundary=XX"],
    ["--XX\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--XX--", "multipart/form-data; boundary=XX"],
    ["--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nx\r\n--XX--", "multipart/form-data; boundary=XX"],
    ["x", "multipart/form-data"],
  ];
  for (const [body, ct] of cases) {
    const r = await post(body, ct);
    assert.equal(r.status, 400, body);
    assert.ok((await r.json()).error.message);
  }
  const form = new FormData();
  form.append("purpose", "fine-tune");
  form.append("file", new Blob(["x\n"]), "a.jsonl");
  const r = await fetch(url, { method: "POST", body: form, headers: auth });
  assert.equal(r.status, 400);
  assert.equal((await r.json()).error.param, "purpose");
  const noKey = await fetch(url, { method: "POST", body: form });
  assert.equal(noKey.status, 401);
  const noKeyGarbage = await fetch(url, { method: "POST", body: "garbage",
    headers: { "content-type": "multipart/form-data; boundary=XX" } });
  assert.equal(noKeyGarbage.status, 401); // the key is checked before the body is read
  // size caps: per file, and per account
  const small = await startServer({ args: ["--data", dir, "--ctx", "512", "--max-file", "2048",
    "--files-quota", "2500"] });
  try {
    const c = new OpenAI({ baseURL: small.url + "/v1", apiKey: acct.carol.key, maxRetries: 0 });
    const big = Buffer.alloc(4096, "a");
    await assert.rejects(c.files.create({ file: await toFile(big, "big.jsonl"), purpose: "batch" }),
      (e) => e.status === 413 && /2048/.test(e.message));
    const huge = await fetch(small.url + "/v1/files", { method: "POST", body: Buffer.alloc(200000, "a"),
      headers: { authorization: "Bearer " + acct.carol.key, "content-type": "multipart/form-data; boundary=XX" } });
    assert.equal(huge.status, 413);
    const dave = newAccount("dave");
    const d = new OpenAI({ baseURL: small.url + "/v1", apiKey: dave.key, maxRetries: 0 });
    const f1 = await d.files.create({ file: await toFile(Buffer.alloc(1500, "b"), "q1.jsonl"), purpose: "batch" });
    await assert.rejects(d.files.create({ file: await toFile(Buffer.alloc(1500, "b"), "q2.jsonl"), purpose: "batch" }),
      (e) => e.status === 413 && e.code === "storage_quota_exceeded");
    await d.files.delete(f1.id); // deleting frees the quota
    await d.files.create({ file: await toFile(Buffer.alloc(1500, "b"), "q3.jsonl"), purpose: "batch" });
  } finally {
    await small.stop();
  }
});

test("cancel stops starting requests and ends cancelled with the partial output", async () => {
  const c = client(acct.bob.key);
  const lines = [];
  for (let i = 0; i < 40; i++)
    lines.push(line(`c${i}`, { model: "tiny", messages: [{ role: "user", content: `number ${i}` }],
      max_tokens: 40, temperature: 0 }));
  const f = await upload(c, lines);
  const created = await c.batches.create({ input_file_id: f.id, endpoint: "/v1/chat/completions",
    completion_window: "24h" });
  await poll(c, created.id, ["in_progress"]);
  const cancelling = await c.batches.cancel(created.id);
  assert.ok(["cancelling", "cancelled"].includes(cancelling.status));
  const b = await poll(c, created.id);
  assert.equal(b.status, "cancelled");
  assert.ok(b.cancelling_at && b.cancelled_at);
  assert.equal(b.request_counts.total, 40);
  assert.ok(b.request_counts.completed < 40, JSON.stringify(b.request_counts));
  const done = b.request_counts.completed;
  if (done > 0) assert.equal((await jsonl(c, b.output_file_id)).length, done);
  else assert.equal(b.output_file_id, null);
  assert.equal(ledger(acct.bob.id).filter((r) => r.batch === b.id).length, done + b.request_counts.failed);
  await assert.rejects(c.batches.cancel(created.id), (e) => e.status === 409);
});

test("killed mid-batch, restarted: the batch resumes and bills each request once", async () => {
  const c0 = client(acct.carol.key);
  const lines = [];
  for (let i = 0; i < 16; i++)
    lines.push(line(`k${i}`, { model: "tiny", messages: [{ role: "user", content: `item ${i}` }],
      max_tokens: 48, temperature: 0 }));
  const f = await upload(c0, lines);
  const created = await c0.batches.create({ input_file_id: f.id, endpoint: "/v1/chat/completions",
    completion_window: "24h" });
  const t0 = Date.now();
  for (;;) {
    const b = await c0.batches.retrieve(created.id);
    // the runner's bound: at most --batch-running (2) of the batch's sequences at once
    const h = await (await fetch(srv.url + "/health")).json();
    assert.ok(h.live_sequences <= 2, JSON.stringify(h));
    if (b.request_counts.completed >= 2) {
      assert.ok(b.request_counts.completed < 16, "the batch ended before the kill: make it longer");
      break;
    }
    assert.ok(b.status === "in_progress" || b.status === "validating", b.status);
    if (Date.now() - t0 > 60000) throw new Error("no progress");
    await new Promise((r) => setTimeout(r, 20));
  }
  srv.proc.kill("SIGKILL");
  await new Promise((r) => srv.proc.once("exit", r));
  srv = await startServer({ models: models(), args: ["--data", dir, "--ctx", "512"] });
  const c = client(acct.carol.key);
  const b = await poll(c, created.id);
  assert.equal(b.status, "completed");
  assert.deepEqual(b.request_counts, { total: 16, completed: 16, failed: 0 });
  const out = await jsonl(c, b.output_file_id);
  assert.deepEqual(out.map((o) => o.custom_id), lines.map((_, i) => `k${i}`));
  const rows = ledger(acct.carol.id).filter((r) => r.batch === b.id);
  assert.equal(rows.length, 16);
  assert.deepEqual(new Set(rows.map((r) => r.id)), new Set(out.map((o) => o.response.request_id)));
  const v = spawnSync(BIN, ["admin", "--data", dir, "verify"], { encoding: "utf8" });
  assert.equal(v.status, 0, v.stderr);
});
