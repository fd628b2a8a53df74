// How `silica serve` decides about API keys: --data turns them on (the first
// start on an empty data dir creates account 1 and prints its key once),
// --no-auth is loopback-only, a non-loopback address needs --data, and
// /v1/user/info and /v1/user/usage answer for the key's own account.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { BIN, startServer, tinyModel } from "./lib/server.mjs";

const dirs = [];
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
function tempDir() {
  const d = mkdtempSync(path.join(tmpdir(), "silica-auth-e2e-"));
  dirs.push(d);
  return d;
}

const msgs = [{ role: "user", content: "Hi" }];

test("refuses --no-auth off loopback and a public address without --data", () => {
  const model = tinyModel();
  for (const extra of [["--host", "0.0.0.0", "--no-auth"], ["--host", "0.0.0.0"], ["--host", "::", "--no-auth"]]) {
    const r = spawnSync(BIN, ["serve", "--port", "0", "--model", "tiny=" + model, ...extra],
      { encoding: "utf8", timeout: 10000 });
    assert.notEqual(r.status, 0, extra.join(" "));
    assert.match(r.stderr, /loopback|without API keys/, r.stderr);
    assert.doesNotMatch(r.stdout, /listening/);
  }
});

test("--data: first start prints the key once; keys required; user info and usage", async () => {
  const dir = tempDir();
  let srv = await startServer({ args: ["--data", dir] });
  try {
    const key = (srv.stdout().match(/\b(sk-[0-9A-Za-z]{48})\b/) || [])[1];
    assert.ok(key, "the first API key is printed on stdout:\n" + srv.stdout());
    const anon = new OpenAI({ baseURL: srv.url + "/v1", apiKey: "sk-not-a-key", maxRetries: 0 });
    await assert.rejects(anon.chat.completions.create({ model: "tiny", messages: msgs, max_tokens: 2 }),
      (e) => e.status === 401);
    const none = await fetch(srv.url + "/v1/chat/completions", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", messages: msgs, max_tokens: 2 }),
    });
    assert.equal(none.status, 401);
    assert.equal((await none.json()).error.code, "missing_api_key");

    const c = new OpenAI({ baseURL: srv.url + "/v1", apiKey: key, maxRetries: 0 });
    const r = await c.chat.completions.create({ model: "tiny", messages: msgs, max_tokens: 3, seed: 1 });
    assert.equal(r.object, "chat.completion");

    const auth = { authorization: "Bearer " + key };
    const info = await fetch(srv.url + "/v1/user/info", { headers: auth });
    assert.equal(info.status, 200);
    const b = await info.json();
    assert.equal(b.data.id, "1");
    assert.equal(b.data.name, "admin");
    assert.equal(b.status, true);
    assert.equal((await fetch(srv.url + "/v1/user/info")).status, 401);
    assert.equal((await fetch(srv.url + "/v1/user/info", { method: "POST", headers: auth })).status, 405);

    const usage = await fetch(srv.url + "/v1/user/usage?group_by=model", { headers: auth });
    assert.equal(usage.status, 200);
    const text = JSON.stringify(await usage.json());
    assert.match(text, /tiny/);
    assert.ok(text.includes(String(r.usage.prompt_tokens)), text);
    assert.equal((await fetch(srv.url + "/v1/user/usage?group_by=nonsense", { headers: auth })).status, 400);
  } finally {
    assert.equal(await srv.stop(), 0);
  }
  // Second start on the same data dir: no new account, no key printed.
  srv = await startServer({ args: ["--data", dir] });
  try {
    assert.doesNotMatch(srv.stdout(), /sk-/);
  } finally {
    await srv.stop();
  }
});

test("--no-auth on loopback serves without keys; no --data has no account routes", async () => {
  const srv = await startServer({ args: ["--data", tempDir(), "--no-auth"] });
  try {
    assert.doesNotMatch(srv.stdout(), /sk-/);
    const c = new OpenAI({ baseURL: srv.url + "/v1", apiKey: "anything", maxRetries: 0 });
    const r = await c.completions.create({ model: "tiny", prompt: "a", max_tokens: 2 });
    assert.equal(r.object, "text_completion");
    const info = await fetch(srv.url + "/v1/user/info");
    assert.equal(info.status, 404);
    assert.match((await info.json()).error.message, /no accounts/);
  } finally {
    await srv.stop();
  }
});
