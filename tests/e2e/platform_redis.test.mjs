// Several nodes, one PostgreSQL ledger, one Redis for the rate limits: two
// `silica serve --db URL --redis URL` processes (node A over TCP with
// --redis, node B over the unix socket with SILICA_REDIS) on a throwaway
// PostgreSQL (tests/pg.sh) and a throwaway Redis (tests/redis.sh), driven
// with fetch and the official openai SDK. An account's RPM and TPM are
// shared by both nodes (requests spread over them hit the limit together,
// with the usual 429); Redis killed → both nodes keep serving under their
// own local limits, say so in /metrics, and no request waits on the dead
// server; Redis back → the limits are shared again. A node starts with
// Redis down and serves; a malformed URL stops it at start.
//
// Skipped, saying why, when no PostgreSQL or no Redis server can start here.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { BIN, ROOT, startServer, metrics, tinyModel } from "./lib/server.mjs";
import { adminCli } from "./lib/admin.mjs";

const PG_SH = path.join(ROOT, "tests/pg.sh");
const REDIS_SH = path.join(ROOT, "tests/redis.sh");
const pgDir = mkdtempSync(path.join(tmpdir(), "silica-pg-e2e-"));
const redisDir = mkdtempSync(path.join(tmpdir(), "silica-redis-e2e-"));
const pgStart = spawnSync("sh", [PG_SH, "start", pgDir], { encoding: "utf8" });
const dbUrl = pgStart.status === 0 ? pgStart.stdout.trim() : null;
const redisStart = dbUrl ? spawnSync("sh", [REDIS_SH, "start", redisDir], { encoding: "utf8" }) : null;
const redisUrl = redisStart && redisStart.status === 0 ? redisStart.stdout.trim() : null;
const redisSock = "unix://" + path.join(redisDir, "redis.sock");
const skip = !dbUrl ? "Redis e2e SKIPPED: no PostgreSQL: " + (pgStart.stderr || "tests/pg.sh failed").trim()
  : !redisUrl ? "Redis e2e SKIPPED: no Redis: " + (redisStart.stderr || "tests/redis.sh failed").trim()
  : false;
if (skip) console.log(skip);

let nodeA, nodeB;


const { admin, newAccount } = adminCli(() => ["--db", dbUrl]);

function redisCli(...args) {
  const r = spawnSync("redis-cli", ["-s", path.join(redisDir, "redis.sock"), "--raw", ...args], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

async function complete(node, key, maxTokens = 1) {
  const t0 = Date.now();
  const r = await fetch(node.url + "/v1/completions", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer " + key },
    body: JSON.stringify({ model: "tiny", prompt: "hi there", max_tokens: maxTokens }),
  });
  return { status: r.status, headers: r.headers, body: await r.json(), ms: Date.now() - t0 };
}

function check429(r, limit, words) {
  assert.equal(r.status, 429);
  assert.ok(Number(r.headers.get("retry-after")) >= 1, "Retry-After");
  assert.equal(r.body.error.code, "rate_limit_exceeded");
  assert.equal(r.body.error.type, "rate_limit_error");
  assert.match(r.body.error.message, new RegExp(`Rate limit reached for tiny: \\d+ ${words} \\(${limit}\\)\\. Retry after \\d+ s\\.`));
}

before(async () => {
  if (skip) return;
  nodeA = await startServer({ args: ["--db", dbUrl, "--ctx", "512", "--redis", redisUrl] });
  process.env.SILICA_REDIS = redisSock;
  try {
    nodeB = await startServer({ args: ["--db", dbUrl, "--ctx", "512"] });
  } finally {
    delete process.env.SILICA_REDIS;
  }
});

after(async () => {
  for (const n of [nodeA, nodeB]) if (n) await n.stop();
  spawnSync("sh", [REDIS_SH, "stop", redisDir]);
  spawnSync("sh", [PG_SH, "stop", pgDir]);
});

test("an account's RPM is shared by the nodes through Redis", { skip }, async () => {
  const acct = newAccount("rita");
  admin("models", "set-limits", String(acct.id), "tiny", "--rpm", "4");
  const codes = [];
  for (let i = 0; i < 8; i++) {
    const r = await complete(i % 2 ? nodeB : nodeA, acct.key);
    codes.push(r.status);
    if (r.status === 429) check429(r, "rpm", "requests per minute");
  }
  assert.deepEqual(codes, [200, 200, 200, 200, 429, 429, 429, 429]);
  // the bucket is in Redis (the key named by account and model)
  assert.equal(redisCli("EXISTS", `silica:rl:{a${acct.id}:tiny}:rpm`), "1");
  const ttl = Number(redisCli("PTTL", `silica:rl:{a${acct.id}:tiny}:rpm`));
  assert.ok(ttl > 0 && ttl <= 61000, "an idle bucket expires: " + ttl);
  for (const n of [nodeA, nodeB]) {
    const m = await metrics(n.url);
    assert.equal(m.silica_ratelimit_redis_up, 1);
    assert.equal(m.silica_ratelimit_local_total, 0);
  }
});

test("an account's TPM is shared: what both nodes admit together stays within it", { skip }, async () => {
  const acct = newAccount("tom");
  admin("models", "set-limits", String(acct.id), "tiny", "--tpm", "1000");
  const clients = [nodeA, nodeB].map((n) => new OpenAI({ baseURL: n.url + "/v1", apiKey: acct.key, maxRetries: 0 }));
  const t0 = Date.now();
  let used = 0, admitted = [0, 0], limited = null, lastNeed = 0;
  for (let i = 0; i < 40 && !limited; i++) {
    try {
      const r = await clients[i % 2].completions.create({ model: "tiny", prompt: "count the tokens", max_tokens: 150 });
      used += r.usage.prompt_tokens + r.usage.completion_tokens;
      lastNeed = r.usage.prompt_tokens + 150;
      admitted[i % 2]++;
    } catch (e) {
      assert.equal(e.status, 429, String(e));
      assert.match(e.message, /1000 tokens per minute \(tpm\)/);
      limited = e;
    }
  }
  assert.ok(limited, "the TPM was reached");
  assert.ok(admitted[0] > 0 && admitted[1] > 0, "both nodes admitted: " + admitted);
  // 1000 tokens a minute refill about 17 a second meanwhile
  const refill = ((Date.now() - t0) / 60000) * 1000 + 1;
  assert.ok(used <= 1000 + refill, `used ${used} tokens over both nodes within 1000 (+${refill.toFixed(1)} refill)`);
  assert.ok(used > 1000 - lastNeed - 1, `the limit, not something else, refused: used ${used}`);
});

test("Redis killed: both nodes serve under local limits; back: shared again", { skip }, async () => {
  const acct = newAccount("otto");
  admin("models", "set-limits", String(acct.id), "tiny", "--rpm", "4");
  assert.equal(spawnSync("sh", [REDIS_SH, "down", redisDir]).status, 0);
  let codes = [];
  try {
    for (let i = 0; i < 10; i++) {
      const r = await complete(i % 2 ? nodeB : nodeA, acct.key);
      codes.push(r.status);
      assert.ok(r.ms < 2000, `a request waited ${r.ms} ms on a dead Redis`);
      if (r.status === 429) check429(r, "rpm", "requests per minute");
      else assert.equal(r.body.object, "text_completion");
    }
    // each node applies the whole limit by itself: 4 + 4
    assert.equal(codes.filter((c) => c === 200).length, 8, codes.join(","));
    for (const n of [nodeA, nodeB]) {
      const m = await metrics(n.url);
      assert.equal(m.silica_ratelimit_redis_up, 0);
      assert.ok(m.silica_ratelimit_redis_outages_total >= 1);
      assert.ok(m.silica_ratelimit_local_total >= 5);
    }
    assert.match(nodeA.log(), /Redis at .* unreachable/);
  } finally {
    assert.equal(spawnSync("sh", [REDIS_SH, "up", redisDir]).status, 0);
  }
  // both reconnect by themselves within the backoff (2 s at most)
  const t0 = Date.now();
  for (;;) {
    const ups = await Promise.all([nodeA, nodeB].map(async (n) => (await metrics(n.url)).silica_ratelimit_redis_up));
    if (ups.every((u) => u === 1)) break;
    assert.ok(Date.now() - t0 < 10000, "the nodes did not reconnect to Redis");
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.match(nodeB.log(), /Redis at .* is back/);
  const again = newAccount("olga");
  admin("models", "set-limits", String(again.id), "tiny", "--rpm", "4");
  codes = [];
  for (let i = 0; i < 8; i++) codes.push((await complete(i % 2 ? nodeB : nodeA, again.key)).status);
  assert.deepEqual(codes, [200, 200, 200, 200, 429, 429, 429, 429]);
  const v = spawnSync(BIN, ["admin", "--db", dbUrl, "verify"], { encoding: "utf8" });
  assert.equal(v.status, 0, v.stderr);
});

test("a node starts with Redis down and serves; a malformed URL stops it at start", { skip }, async () => {
  const node = await startServer({ args: ["--db", dbUrl, "--ctx", "512", "--redis", "redis://127.0.0.1:1"] });
  try {
    const acct = newAccount("uma");
    const r = await complete(node, acct.key);
    assert.equal(r.status, 200);
    const m = await metrics(node.url);
    assert.equal(m.silica_ratelimit_redis_up, 0);
    assert.equal(m.silica_ratelimit_local_total, 1);
  } finally {
    await node.stop();
  }
  for (const [url, why] of [["http://localhost:6379", /not a Redis URL/], ["redis://localhost:99999", /port/],
    ["rediss://localhost", /TLS/]]) {
    const r = spawnSync(BIN, ["serve", "--port", "0", "--model", "tiny=" + tinyModel(), "--db", dbUrl, "--redis", url],
      { encoding: "utf8", timeout: 20000 });
    assert.notEqual(r.status, 0, url);
    assert.match(r.stderr, why, url);
  }
  const r = spawnSync(BIN, ["serve", "--port", "0", "--model", "tiny=" + tinyModel(), "--no-auth", "--redis", redisUrl],
    { encoding: "utf8", timeout: 20000 });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /needs --data DIR or --db URL/);
});
