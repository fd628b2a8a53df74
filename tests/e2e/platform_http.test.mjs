// The platform on the wire: `silica serve --data DIR` with accounts and keys
// made by `silica admin`, driven by the official openai SDK and fetch.
// Auth failures (401), x-request-id, /v1/user/info and tenant isolation,
// balance exhaustion (403), RPM (429 + Retry-After), ledger totals equal to
// the usage the clients saw, and crash safety: SIGKILL under load, restart,
// every request a client saw complete is in the ledger exactly once and the
// books balance.
//
// Skipped (with a note) while `silica serve` does not take --no-auth, i.e.
// until the platform is wired into the server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { BIN, startServer, tinyModel } from "./lib/server.mjs";
import { adminCli } from "./lib/admin.mjs";

const wired = (() => {
  const r = spawnSync(BIN, ["serve", "--help"], { encoding: "utf8" });
  return r.status === 0 && /--no-auth/.test(r.stdout + r.stderr);
})();
const skip = wired ? false : "silica serve does not wire the platform yet (no --no-auth)";

let dir, srv;
const keys = {};


const { admin, newAccount } = adminCli(() => ["--data", dir]);

function client(key) {
  return new OpenAI({ baseURL: srv.url + "/v1", apiKey: key, maxRetries: 0 });
}

function ledger(account) {
  // request,requests,prompt_tokens,cached,completion,reasoning,total,cost
  const out = admin("usage", "--by", "request", "--format", "csv", "--account", String(account));
  return out.trim().split("\n").slice(1).filter(Boolean).map((l) => {
    const c = l.split(",");
    return { id: c[0], n: Number(c[1]), prompt: Number(c[2]), completion: Number(c[4]) };
  });
}

before(async () => {
  if (!wired) return;
  dir = mkdtempSync(path.join(tmpdir(), "silica-plat-e2e-"));
  for (const n of ["alice", "bob", "carol", "dave", "erin"]) keys[n] = newAccount(n);
  // 100 yuan per million tokens: 0.0001 yuan a token.
  admin("models", "set-price", "tiny", "--input", "100", "--output", "100");
  srv = await startServer({ args: ["--data", dir, "--ctx", "512"] });
});

after(async () => {
  if (srv) await srv.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const msgs = [{ role: "user", content: "Hello there" }];

test("401 for missing, malformed, unknown, revoked and expired keys", { skip }, async () => {
  const url = srv.url + "/v1/chat/completions";
  const body = JSON.stringify({ model: "tiny", messages: msgs, max_tokens: 2 });
  const post = (auth) => fetch(url, {
    method: "POST", body,
    headers: { "content-type": "application/json", ...(auth ? { authorization: auth } : {}) },
  });
  for (const auth of [null, "Bearer", "Basic abc", "Bearer sk-short", "Bearer sk-" + "a".repeat(48)]) {
    const r = await post(auth);
    assert.equal(r.status, 401, String(auth));
    const e = (await r.json()).error;
    assert.equal(typeof e.message, "string");
    assert.ok(e.code === "invalid_api_key" || e.code === "missing_api_key");
  }
  const ok = await post("Bearer " + keys.alice.key);
  assert.equal(ok.status, 200);
  assert.match(ok.headers.get("x-request-id"), /^req-[0-9a-f]{32}$/);
  await ok.json();

  // Revocation takes effect on the next request, with the server running.
  const extra = admin("keys", "create", "--account", String(keys.alice.id)).trim();
  assert.equal((await post("Bearer " + extra)).status, 200);
  const kid = admin("keys", "list", "--account", String(keys.alice.id)).trim().split("\n").pop().split(/\s+/)[0];
  admin("keys", "revoke", kid);
  const rv = await post("Bearer " + extra);
  assert.equal(rv.status, 401);
  assert.match((await rv.json()).error.message, /revoked/);

  const expired = admin("keys", "create", "--account", String(keys.alice.id), "--expires", "2020-01-01").trim();
  const ex = await post("Bearer " + expired);
  assert.equal(ex.status, 401);
  assert.match((await ex.json()).error.message, /expired/);

  await assert.rejects(client("sk-nope").chat.completions.create({ model: "tiny", messages: msgs }),
    (e) => e.status === 401);
});

test("/v1/user/info answers for the key's own account only", { skip }, async (t) => {
  const get = (k) => fetch(srv.url + "/v1/user/info", { headers: { authorization: "Bearer " + k } });
  const probe = await get(keys.bob.key);
  if (probe.status === 404) return t.skip("the server has no /v1/user/info route yet");
  assert.equal(probe.status, 200);
  const b = await probe.json();
  assert.equal(b.data.id, String(keys.bob.id));
  assert.equal(b.data.name, "bob");
  for (const f of ["balance", "chargeBalance", "totalBalance", "status"]) assert.equal(typeof b.data[f], "string");
  assert.equal(b.data.totalBalance, "14.00");
  const a = await (await get(keys.alice.key)).json();
  assert.equal(a.data.name, "alice");
  assert.equal((await fetch(srv.url + "/v1/user/info")).status, 401);
});

test("403 when the balance runs out mid-traffic; other tenants unaffected", { skip }, async () => {
  // carol keeps 0.01 yuan: each request may cost up to ~(prompt + 8) * 0.0001.
  admin("accounts", "credit", String(keys.carol.id), "--gift", "-13.99");
  const c = client(keys.carol.key);
  let ok = 0, refused = null;
  for (let i = 0; i < 50 && !refused; i++) {
    try {
      await c.chat.completions.create({ model: "tiny", messages: msgs, max_tokens: 8 });
      ok++;
    } catch (e) { refused = e; }
  }
  assert.ok(ok >= 1, "some requests ran before the money ran out");
  assert.ok(refused, "the balance ran out");
  assert.equal(refused.status, 403);
  assert.match(refused.message, /[Bb]alance/);
  const info = JSON.parse(admin("accounts", "show", String(keys.carol.id)));
  assert.ok(Number(info.data.totalBalance) >= 0, "never below zero: " + info.data.totalBalance);
  // bob still works
  await client(keys.bob.key).chat.completions.create({ model: "tiny", messages: msgs, max_tokens: 2 });
});

test("429 with Retry-After and the limit's name over RPM", { skip }, async () => {
  admin("models", "set-limits", String(keys.dave.id), "tiny", "--rpm", "3");
  const url = srv.url + "/v1/completions";
  const post = () => fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer " + keys.dave.key },
    body: JSON.stringify({ model: "tiny", prompt: "hi", max_tokens: 1 }),
  });
  for (let i = 0; i < 3; i++) { const r = await post(); assert.equal(r.status, 200); await r.json(); }
  const r = await post();
  assert.equal(r.status, 429);
  const ra = Number(r.headers.get("retry-after"));
  assert.ok(ra >= 1 && ra <= 20, "retry-after " + ra);
  assert.match((await r.json()).error.message, /rpm|requests per minute/);
});

test("ledger totals equal the usage the clients saw", { skip }, async () => {
  const c = client(keys.erin.key);
  let prompt = 0, completion = 0, n = 0;
  const jobs = [];
  for (let i = 0; i < 40; i++) {
    jobs.push((async () => {
      let u;
      if (i % 3 === 0) {
        const s = await c.chat.completions.create({ model: "tiny", messages: msgs, max_tokens: 1 + (i % 7), stream: true, stream_options: { include_usage: true } });
        for await (const ch of s) if (ch.usage) u = ch.usage;
      } else if (i % 3 === 1) {
        u = (await c.completions.create({ model: "tiny", prompt: "count " + i, max_tokens: 1 + (i % 5) })).usage;
      } else {
        u = (await c.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x".repeat(i) }], max_tokens: 3 })).usage;
      }
      prompt += u.prompt_tokens; completion += u.completion_tokens; n++;
    })());
  }
  await Promise.all(jobs);
  const rows = ledger(keys.erin.id);
  assert.equal(rows.length, n);
  assert.equal(rows.reduce((s, r) => s + r.prompt, 0), prompt);
  assert.equal(rows.reduce((s, r) => s + r.completion, 0), completion);
  admin("verify");
});

test("SIGKILL under load: every completed request is in the ledger once", { skip }, async () => {
  const seen = [];
  let stop = false;
  const worker = async () => {
    while (!stop) {
      try {
        const r = await fetch(srv.url + "/v1/completions", {
          method: "POST",
          headers: { "content-type": "application/json", authorization: "Bearer " + keys.alice.key },
          body: JSON.stringify({ model: "tiny", prompt: "load", max_tokens: 4 }),
        });
        const j = await r.json();
        if (r.status === 200 && j.usage) seen.push(r.headers.get("x-request-id"));
      } catch { /* the server died under us */ }
    }
  };
  const workers = [worker(), worker(), worker(), worker()];
  while (seen.length < 30) await new Promise((r) => setTimeout(r, 20));
  srv.proc.kill("SIGKILL");
  await new Promise((r) => srv.proc.on("exit", r));
  stop = true;
  await Promise.all(workers);
  srv = await startServer({ args: ["--data", dir, "--ctx", "512"] });
  admin("verify");
  const counts = new Map();
  for (const r of ledger(keys.alice.id)) counts.set(r.id, (counts.get(r.id) || 0) + r.n);
  for (const id of seen) assert.equal(counts.get(id), 1, id);
  // the restarted server serves and bills again
  await client(keys.alice.key).completions.create({ model: "tiny", prompt: "again", max_tokens: 1 });
});
