// The web console: its files embedded in `silica serve` (types, security
// headers, ETag / 304, HEAD, 404, no path traversal, --no-console), the
// tenant's own key routes (/v1/user/keys: create -> usable with the openai
// SDK -> listed -> revoked -> 401; isolation between accounts; validation;
// the cap), and the page itself in Debian's Chromium driven by
// playwright-core: sign in, balance, a streamed playground chat, keys
// created / shown once / revoked, usage, errors, a narrow screen.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { BIN, ROOT, startServer, waitIdle } from "./lib/server.mjs";
import { adminCli } from "./lib/admin.mjs";

const CHROMIUM = process.env.SILICA_CHROMIUM || "/usr/bin/chromium";
const CSP = "default-src 'self'; frame-ancestors 'none'";
const MAX_KEYS = 6;

let dir, srv, adminKey;
const dirs = [];

function tempDir() {
  const d = mkdtempSync(path.join(tmpdir(), "silica-console-e2e-"));
  dirs.push(d);
  return d;
}


const { admin, newAccount: newAccountKey } = adminCli(() => ["--data", dir]);
const newAccount = (name) => newAccountKey(name, "first");

const client = (key) => new OpenAI({ baseURL: srv.url + "/v1", apiKey: key, maxRetries: 0 });
const chat = (key) => client(key).chat.completions.create({
  model: "tiny", messages: [{ role: "user", content: "Hi" }], max_tokens: 2,
});

function keysApi(key, method = "GET", body, id) {
  return fetch(srv.url + "/v1/user/keys" + (id !== undefined ? "/" + id : ""), {
    method,
    headers: { authorization: "Bearer " + key, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
}

// One HTTP/1.1 request over a plain socket, the path sent exactly as given
// (fetch would normalize "..", which is the point of these requests).
function rawRequest(port, method, target, headers = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, "127.0.0.1");
    const chunks = [];
    sock.setTimeout(5000, () => { sock.destroy(); reject(new Error("raw request timed out")); });
    sock.on("data", (d) => chunks.push(d));
    sock.on("error", reject);
    sock.on("end", () => {
      const buf = Buffer.concat(chunks);
      const sep = buf.indexOf("\r\n\r\n");
      const head = buf.subarray(0, sep).toString("latin1").split("\r\n");
      const h = {};
      for (const line of head.slice(1)) {
        const i = line.indexOf(":");
        h[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status: Number(head[0].split(" ")[1]), headers: h, body: buf.subarray(sep + 4) });
    });
    let req = `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n`;
    for (const [k, v] of Object.entries(headers)) req += `${k}: ${v}\r\n`;
    sock.write(req + "\r\n");
  });
}

before(async () => {
  dir = tempDir();
  srv = await startServer({ args: ["--data", dir, "--max-keys", String(MAX_KEYS)] });
  adminKey = (srv.stdout().match(/\b(sk-[0-9A-Za-z]{48})\b/) || [])[1];
  assert.ok(adminKey, "the first key is printed:\n" + srv.stdout());
});

after(async () => {
  if (srv) await srv.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const FILES = {
  "index.html": "text/html; charset=utf-8",
  "console.js": "text/javascript; charset=utf-8",
  "console.css": "text/css; charset=utf-8",
  "favicon.svg": "image/svg+xml",
};

function checkSecurityHeaders(r, what) {
  assert.equal(r.headers.get("content-security-policy"), CSP, what);
  assert.equal(r.headers.get("x-content-type-options"), "nosniff", what);
  assert.equal(r.headers.get("referrer-policy"), "no-referrer", what);
}

test("serves the embedded console files with their types, security headers and ETags", async () => {
  assert.match(srv.stdout(), new RegExp(`web console on http://127\\.0\\.0\\.1:${srv.port}/`));
  const etags = new Set();
  for (const [name, type] of Object.entries(FILES)) {
    const r = await fetch(`${srv.url}/console/${name}`);
    assert.equal(r.status, 200, name);
    assert.equal(r.headers.get("content-type"), type, name);
    assert.equal(r.headers.get("cache-control"), "no-cache", name);
    checkSecurityHeaders(r, name);
    const etag = r.headers.get("etag");
    assert.match(etag, /^"[0-9a-f]+-[0-9a-f]{16}"$/, name);
    etags.add(etag);
    // the binary serves what web/ holds now (the Makefile rebuilds it on a change)
    const body = Buffer.from(await r.arrayBuffer());
    assert.ok(body.equals(readFileSync(path.join(ROOT, "web", name))), `${name} equals web/${name}`);
    assert.equal(Number(r.headers.get("content-length")), body.length);
  }
  assert.equal(etags.size, Object.keys(FILES).length, "each file has its own ETag");

  const index = await (await fetch(`${srv.url}/console/index.html`)).text();
  for (const p of ["/", "/console", "/console/"]) {
    const r = await fetch(srv.url + p);
    assert.equal(r.status, 200, p);
    assert.equal(r.headers.get("content-type"), "text/html; charset=utf-8", p);
    checkSecurityHeaders(r, p);
    assert.equal(await r.text(), index, p);
  }
  // the CSP allows no inline script or style: the page uses only its files
  assert.doesNotMatch(index, /<script(?![^>]*\bsrc=)[^>]*>/i, "no inline <script>");
  assert.doesNotMatch(index, /\son[a-z]+=/i, "no inline event handlers");
  assert.doesNotMatch(index, /<style|style=/i, "no inline styles");
  assert.doesNotMatch(index + readFileSync(path.join(ROOT, "web/console.js"), "utf8"), /https?:\/\/(?!127\.)/,
    "nothing loaded from outside");
  assert.match(index, /src="\/console\/console\.js"/);
  assert.match(index, /href="\/console\/console\.css"/);
});

test("ETag and If-None-Match: 304 without a body; HEAD gives the length without the body", async () => {
  const r = await fetch(`${srv.url}/console/console.js`);
  const etag = r.headers.get("etag");
  const len = (await r.arrayBuffer()).byteLength;
  for (const inm of [etag, `W/${etag}`, `"nope", ${etag}`, "*"]) {
    const n = await rawRequest(srv.port, "GET", "/console/console.js", { "If-None-Match": inm });
    assert.equal(n.status, 304, inm);
    assert.equal(n.body.length, 0, inm);
    assert.equal(n.headers.etag, etag);
    assert.equal(n.headers["cache-control"], "no-cache");
  }
  for (const inm of ['"nope"', etag.slice(0, -2) + '0"', ""]) {
    const n = await fetch(`${srv.url}/console/console.js`, { headers: { "If-None-Match": inm } });
    assert.equal(n.status, 200, inm);
    await n.arrayBuffer();
  }
  // another file's tag does not match
  const css = (await fetch(`${srv.url}/console/console.css`)).headers.get("etag");
  assert.equal((await rawRequest(srv.port, "GET", "/console/console.js", { "If-None-Match": css })).status, 200);

  const h = await rawRequest(srv.port, "HEAD", "/console/console.js");
  assert.equal(h.status, 200);
  assert.equal(Number(h.headers["content-length"]), len);
  assert.equal(h.headers["content-type"], "text/javascript; charset=utf-8");
  assert.equal(h.headers.etag, etag);
  assert.equal(h.headers["content-security-policy"], CSP);
  assert.equal(h.body.length, 0, "HEAD sends no body");
  const h2 = await rawRequest(srv.port, "HEAD", "/");
  assert.equal(h2.status, 200);
  assert.equal(h2.body.length, 0);

  const post = await fetch(`${srv.url}/console/console.js`, { method: "POST" });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, HEAD");
});

test("unknown files are 404 and no path reaches outside the embedded table", async () => {
  assert.ok(existsSync(path.join(dir, "silica.db")));
  const attempts = [
    "/console/nope.js", "/console/INDEX.HTML", "/console/index.htm", "/console/.index.html",
    "/console/../silica.db", "/console/%2e%2e/silica.db", "/console/%2E%2E%2Fsilica.db",
    "/console/..%2fsilica.db", "/console/..%5csilica.db", "/console/../../../../etc/passwd",
    "/console/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/console//etc/passwd",
    "/console/%2fetc%2fpasswd", "/console/./index.html", "/console/web/index.html",
    "/console/index.html%00.css", "/console/console.js%00", "/../silica.db", "/silica.db",
    "/console%2f..%2fsilica.db", "/index.html", "/web/console.js",
  ];
  for (const p of attempts) {
    const r = await rawRequest(srv.port, "GET", p);
    assert.ok(r.status === 404 || r.status === 400, `${p}: ${r.status}`);
    const text = r.body.toString("latin1");
    assert.doesNotMatch(text, /SQLite format|root:|<!doctype/i, p);
    const e = JSON.parse(text).error;
    assert.equal(typeof e.message, "string", p);
    if (p.startsWith("/console/") && r.status === 404) checkSecurityHeaders({ headers: new Map(Object.entries(r.headers)) }, p);
  }
  const r = await fetch(`${srv.url}/console/nope.js`);
  assert.equal(r.status, 404);
  assert.match((await r.json()).error.message, /no file 'nope\.js'/);
});

test("--no-console serves the API without the console, and --help says so", async () => {
  const help = spawnSync(BIN, ["serve", "--help"], { encoding: "utf8" });
  assert.match(help.stdout, /--no-console/);
  assert.match(help.stdout, /--max-keys/);
  const s = await startServer({ args: ["--data", tempDir(), "--no-console"] });
  try {
    assert.doesNotMatch(s.stdout(), /web console/);
    for (const p of ["/", "/console", "/console/console.js", "/console/index.html"]) {
      const r = await fetch(s.url + p);
      assert.equal(r.status, 404, p);
      assert.equal((await r.json()).error.code, "unknown_url");
    }
    assert.equal((await fetch(s.url + "/health")).status, 200);
  } finally {
    await s.stop();
  }
});

test("key routes: create, use with the openai SDK, list, revoke, then 401", async () => {
  const created = await keysApi(adminKey, "POST", { name: "sdk test", expires_at: null });
  assert.equal(created.status, 201);
  const k = await created.json();
  assert.match(k.key, /^sk-[0-9A-Za-z]{48}$/);
  assert.equal(k.prefix, k.key.slice(0, 11));
  assert.equal(k.name, "sdk test");
  assert.equal(k.enabled, true);
  assert.equal(k.expires_at, null);
  assert.equal(k.current, false);
  assert.equal(typeof k.id, "number");

  const r = await chat(k.key);
  assert.equal(r.object, "chat.completion");

  const list = await (await keysApi(adminKey)).json();
  assert.equal(list.object, "list");
  const mine = list.data.find((x) => x.id === k.id);
  assert.ok(mine && mine.enabled && !mine.current);
  assert.equal(mine.key, undefined, "the secret is shown only once");
  assert.ok(!JSON.stringify(list).includes(k.key.slice(11)), "no secret in the list");
  assert.ok(list.data.find((x) => x.current).prefix === adminKey.slice(0, 11));
  // listed from the new key too, marked as the current one there
  const fromNew = await (await keysApi(k.key)).json();
  assert.equal(fromNew.data.find((x) => x.current).id, k.id);

  const del = await keysApi(adminKey, "DELETE", undefined, k.id);
  assert.equal(del.status, 200);
  assert.deepEqual(await del.json(), { id: k.id, object: "api_key", deleted: true });
  await assert.rejects(chat(k.key), (e) => e.status === 401 && /revoked/.test(e.message));
  const after = (await (await keysApi(adminKey)).json()).data.find((x) => x.id === k.id);
  assert.equal(after.enabled, false);

  // a key with an expiry: kept as given (unix seconds)
  const exp = Math.floor(Date.now() / 1000) + 3600;
  const e = await (await keysApi(adminKey, "POST", { name: "hourly", expires_at: exp })).json();
  assert.equal(e.expires_at, exp);
  assert.equal((await chat(e.key)).object, "chat.completion");
  await keysApi(adminKey, "DELETE", undefined, e.id);
});

test("key routes: an account sees and revokes only its own keys; a key cannot revoke itself", async () => {
  const a = newAccount("iso-a");
  const b = newAccount("iso-b");
  const listA = (await (await keysApi(a.key)).json()).data;
  const listB = (await (await keysApi(b.key)).json()).data;
  assert.equal(listA.length, 1);
  assert.equal(listB.length, 1);
  assert.notEqual(listA[0].id, listB[0].id);
  assert.equal(listB[0].prefix, b.key.slice(0, 11));

  // B revoking A's key: the same 404 as a key that does not exist
  const cross = await keysApi(b.key, "DELETE", undefined, listA[0].id);
  const none = await keysApi(b.key, "DELETE", undefined, 999999);
  assert.equal(cross.status, 404);
  assert.equal(none.status, 404);
  const ce = (await cross.json()).error, ne = (await none.json()).error;
  assert.equal(ce.code, "key_not_found");
  assert.equal(ce.code, ne.code);
  assert.equal(ce.type, ne.type);
  assert.equal(ce.message.replace(String(listA[0].id), "N"), ne.message.replace("999999", "N"));
  assert.equal((await chat(a.key)).object, "chat.completion", "A's key still works");
  for (const junk of ["abc", "0", "-1", "1.5", "%2e%2e"]) {
    const r = await keysApi(b.key, "DELETE", undefined, junk);
    assert.equal(r.status, 404, junk);
  }

  const self = await keysApi(a.key, "DELETE", undefined, listA[0].id);
  assert.equal(self.status, 400);
  assert.equal((await self.json()).error.code, "cannot_revoke_current_key");
  assert.equal((await chat(a.key)).object, "chat.completion");

  // without a key, or with a bad one: 401 like any route
  assert.equal((await fetch(srv.url + "/v1/user/keys")).status, 401);
  assert.equal((await keysApi("sk-" + "x".repeat(48))).status, 401);
  // wrong methods
  const put = await fetch(srv.url + "/v1/user/keys", { method: "PUT" });
  assert.equal(put.status, 405);
  assert.equal(put.headers.get("allow"), "GET, POST");
  const get1 = await keysApi(a.key, "GET", undefined, listA[0].id);
  assert.equal(get1.status, 405);
  assert.equal(get1.headers.get("allow"), "DELETE");
});

test("key routes: bad names and expiries are 400s naming the field; the cap is a 409", async () => {
  const c = newAccount("cap");
  const now = Math.floor(Date.now() / 1000);
  const bad = [
    [{}, "name"], [{ name: "" }, "name"], [{ name: 5 }, "name"], [{ name: "a/b" }, "name"],
    [{ name: "x".repeat(65) }, "name"], [{ name: " padded" }, "name"], [{ name: "<img src=x>" }, "name"],
    [{ name: "ok", expires_at: now - 10 }, "expires_at"], [{ name: "ok", expires_at: "tomorrow" }, "expires_at"],
    [{ name: "ok", expires_at: now + 0.5 }, "expires_at"], [{ name: "ok", expires_at: 1e15 }, "expires_at"],
  ];
  for (const [body, param] of bad) {
    const r = await keysApi(c.key, "POST", body);
    assert.equal(r.status, 400, JSON.stringify(body));
    const e = (await r.json()).error;
    assert.equal(e.param, param, JSON.stringify(body));
    assert.equal(e.type, "invalid_request_error");
    assert.match(e.message, new RegExp(param));
  }
  for (const raw of ["not json", "[1]", ""]) {
    const r = await keysApi(c.key, "POST", raw);
    assert.equal(r.status, 400, raw);
    assert.match((await r.json()).error.message, /JSON object/);
  }
  // the cap counts live keys: the first key plus MAX_KEYS - 1 more
  const made = [];
  for (let i = 1; i < MAX_KEYS; i++) {
    const r = await keysApi(c.key, "POST", { name: `k${i}` });
    assert.equal(r.status, 201, `key ${i}`);
    made.push(await r.json());
  }
  const over = await keysApi(c.key, "POST", { name: "one too many" });
  assert.equal(over.status, 409);
  const oe = (await over.json()).error;
  assert.equal(oe.code, "key_limit_reached");
  assert.match(oe.message, new RegExp(`${MAX_KEYS}.*revoke`));
  assert.equal((await keysApi(c.key, "DELETE", undefined, made[0].id)).status, 200);
  assert.equal((await keysApi(c.key, "POST", { name: "after a revoke" })).status, 201);
});

test("/v1/user/prices lists the price rows for any valid key", async () => {
  const before = await (await fetch(srv.url + "/v1/user/prices", { headers: { authorization: "Bearer " + adminKey } })).json();
  assert.equal(before.object, "list");
  assert.equal(before.unit, "yuan per million tokens");
  admin("models", "set-price", "priced-elsewhere", "--input", "1", "--output", "3");
  const u = newAccount("price-reader");
  const r = await fetch(srv.url + "/v1/user/prices", { headers: { authorization: "Bearer " + u.key } });
  assert.equal(r.status, 200);
  const row = (await r.json()).data.find((p) => p.model === "priced-elsewhere");
  assert.deepEqual(row, { model: "priced-elsewhere", input: "1.00", cached_input: "1.00", output: "3.00" });
  assert.equal((await fetch(srv.url + "/v1/user/prices")).status, 401);
});

test("key routes without the platform (--no-auth) say that the platform is off", async () => {
  const s = await startServer({ args: ["--no-auth"] });
  try {
    for (const [method, p] of [["GET", "/v1/user/keys"], ["POST", "/v1/user/keys"], ["DELETE", "/v1/user/keys/1"]]) {
      const r = await fetch(s.url + p, { method, body: method === "POST" ? "{}" : undefined });
      assert.equal(r.status, 404, method);
      const e = (await r.json()).error;
      assert.match(e.message, /no accounts.*platform is off/, method);
      assert.equal(e.type, "invalid_request_error");
    }
    // the console itself is still served (models and the playground work)
    assert.equal((await fetch(s.url + "/")).status, 200);
  } finally {
    await s.stop();
  }
});

// ---- the page in a real browser ----

test("the console in Chromium: sign in, balance, playground stream, keys, usage, errors", async (t) => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run \`make deps\` (Debian's chromium)`);
  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: process.getuid && process.getuid() === 0 ? ["--no-sandbox"] : [],
  });
  t.after(() => browser.close());
  const ctx = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(15000);
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 40[0-9]/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  const text = (sel) => page.locator(sel).textContent();

  // an account whose name is markup: it must show as text
  const x = newAccount("<b>Xena</b> & co");

  await page.goto(srv.url + "/");
  await page.locator("#signin-key").waitFor();
  assert.ok(await page.locator("#app").isHidden());

  // wrong keys: the server's message, still signed out
  await page.fill("#signin-key", "not-a-key");
  await page.click("#signin-submit");
  await page.locator("#signin-error").waitFor();
  assert.match(await text("#signin-error"), /Malformed API key/);
  await page.fill("#signin-key", "sk-" + "Q".repeat(48));
  await page.click("#signin-submit");
  await page.waitForFunction(() => /Incorrect API key/.test(document.getElementById("signin-error").textContent));
  assert.ok(await page.locator("#app").isHidden());

  // sign in as the markup-named account: text, not HTML
  await page.fill("#signin-key", x.key);
  await page.click("#signin-submit");
  await page.locator("#acct-name").filter({ hasText: "Xena" }).waitFor();
  assert.equal(await text("#acct-name"), "<b>Xena</b> & co");
  assert.equal(await page.locator("#acct-name b, #who b").count(), 0);
  assert.equal(await text("#bal-total"), "14.00");
  assert.equal(await text("#bal-gift"), "14.00");
  assert.equal(await text("#bal-charge"), "0.00");
  await page.click("#signout");
  await page.locator("#signin-key").waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, "signing out forgets the key");

  // the admin account, through the playground
  await page.fill("#signin-key", adminKey);
  await page.click("#signin-submit");
  await page.locator("#acct-name").filter({ hasText: "admin" }).waitFor();
  assert.match(await text("#acct-id"), /^id 1\b/);
  assert.equal(await text("#base-url"), srv.url + "/v1");
  // the key survives a reload of the tab (sessionStorage)
  await page.reload();
  await page.locator("#acct-name").filter({ hasText: "admin" }).waitFor();

  await page.click('a[data-view="models"]');
  await page.locator("#models-table tbody tr").first().waitFor();
  assert.match(await text("#models-table tbody"), /tiny.*chat/s);
  assert.match(await text("#models-table tbody"), /free/, "no price row: free");
  admin("models", "set-price", "tiny", "--input", "0.5", "--output", "2", "--cached", "0.25");
  await page.reload();
  await page.click('a[data-view="models"]');
  await page.locator("#models-table tbody td", { hasText: "0.50 in · 0.25 cached · 2.00 out" }).waitFor();

  await page.click('a[data-view="playground"]');
  await page.locator("#play-model option").first().waitFor({ state: "attached" });
  assert.equal(await page.inputValue("#play-model"), "tiny");
  await page.fill("#play-system", "Be brief.");
  await page.fill("#play-user", "Tell me about silica.");
  await page.fill("#play-temperature", "1");
  await page.fill("#play-max-tokens", "24");
  await page.fill("#play-seed", "3");
  await page.click("#play-send");
  await page.waitForFunction(() => /tokens/.test(document.getElementById("play-status").textContent));
  const answer = await text("#play-answer");
  const status = await text("#play-status");
  assert.ok(answer.length > 0, "text appeared");
  // the same request without streaming (same seed) gives the same text and usage
  const ref = await client(adminKey).chat.completions.create({
    model: "tiny", temperature: 1, max_tokens: 24, seed: 3,
    messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Tell me about silica." }],
  });
  assert.equal(answer, ref.choices[0].message.content);
  assert.match(status, new RegExp(`${ref.usage.prompt_tokens} prompt \\+ ${ref.usage.completion_tokens} completion = ${ref.usage.total_tokens} tokens`));
  assert.ok(await page.locator("#play-reasoning-box").isHidden(), "no reasoning box without reasoning");
  assert.ok(await page.locator("#play-stop").isDisabled());

  // a long answer: its text shows and grows while the request still runs
  // (Stop enabled), then Stop aborts it and the server lets go of the sequence
  await page.fill("#play-seed", "");
  await page.fill("#play-max-tokens", "900");
  await page.fill("#play-temperature", "1");
  await page.click("#play-send");
  const shown = await page.waitForFunction(() => !document.getElementById("play-stop").disabled &&
    document.getElementById("play-answer").textContent.length);
  const firstLength = await shown.jsonValue();
  await page.waitForFunction((n) => !document.getElementById("play-stop").disabled &&
    document.getElementById("play-answer").textContent.length > n, firstLength);
  await page.click("#play-stop");
  await page.waitForFunction(() => document.getElementById("play-status").textContent === "Stopped.");
  assert.ok(await page.locator("#play-send").isEnabled());
  await waitIdle(srv.url);

  // an API error is shown as the server worded it
  await page.fill("#play-max-tokens", "100000");
  await page.click("#play-send");
  await page.locator("#play-error").waitFor();
  assert.match(await text("#play-error"), /max_tokens|context/);

  // reasoning_content and an SSE stream cut into odd pieces (CRLF, comments,
  // multi-line data): a stream from a model that thinks, served by the test
  await page.route("**/v1/chat/completions", (route) => {
    const ev = (o) => `data: ${JSON.stringify(o)}\r\n\r\n`;
    const d = (delta) => ({ choices: [{ index: 0, delta, finish_reason: null }] });
    route.fulfill({
      status: 200, contentType: "text/event-stream",
      body: ": keep-alive\n\n" + ev(d({ role: "assistant", content: "" })) +
        ev(d({ reasoning_content: "Thinking <b>hard</b>" })) + ev(d({ reasoning_content: "..." })) +
        ev(d({ content: "Silica is " })) + `data: {"choices":[{"index":0,\ndata: "delta":{"content":"SiO2."}}]}\n\n` +
        ev({ choices: [{ index: 0, delta: {}, finish_reason: "stop" }] }) +
        ev({ choices: [], usage: { prompt_tokens: 7, completion_tokens: 5, total_tokens: 12, completion_tokens_details: { reasoning_tokens: 2 } } }) +
        "data: [DONE]\n\n",
    });
  });
  await page.fill("#play-max-tokens", "16");
  await page.click("#play-send");
  await page.waitForFunction(() => /12 tokens/.test(document.getElementById("play-status").textContent));
  assert.equal(await text("#play-reasoning"), "Thinking <b>hard</b>...");
  assert.equal(await page.locator("#play-reasoning b").count(), 0);
  assert.ok(await page.locator("#play-reasoning-box").isVisible());
  assert.equal(await text("#play-answer"), "Silica is SiO2.");
  assert.match(await text("#play-status"), /2 reasoning/);
  await page.unroute("**/v1/chat/completions");

  // keys: create one, read it once, use it, revoke it
  await page.click('a[data-view="keys"]');
  await page.locator("#keys-table tbody tr").first().waitFor();
  await page.fill("#key-name", "bad/name");
  await page.click('#key-form button[type="submit"]');
  await page.locator("#key-form-error").waitFor();
  assert.match(await text("#key-form-error"), /Invalid 'name'/);
  await page.fill("#key-name", "from the browser");
  await page.selectOption("#key-expiry", "30");
  await page.click('#key-form button[type="submit"]');
  await page.locator("#new-key").waitFor();
  const newKey = await page.inputValue("#new-key-value");
  assert.match(newKey, /^sk-[0-9A-Za-z]{48}$/);
  assert.ok(await page.locator("#key-form-error").isHidden());
  await ctx.grantPermissions(["clipboard-read", "clipboard-write"]);
  await page.click("#new-key-copy");
  await page.locator("#new-key-copied").filter({ hasText: "Copied" }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), newKey);
  assert.equal((await chat(newKey)).object, "chat.completion", "the new key works");
  const row = page.locator("#keys-table tbody tr", { hasText: "from the browser" });
  await row.waitFor();
  assert.match(await row.textContent(), /active/);
  assert.match(await row.textContent(), new RegExp(newKey.slice(0, 11)));
  assert.ok(!(await row.textContent()).includes(newKey.slice(11)), "the table shows only the prefix");
  await page.click("#new-key-done");
  assert.ok(await page.locator("#new-key").isHidden());
  assert.equal(await page.inputValue("#new-key-value"), "", "the page forgets the key");
  assert.ok(!(await page.content()).includes(newKey.slice(11)));
  // the key the page is signed in with cannot be revoked from it
  const current = page.locator("#keys-table tbody tr", { hasText: "this key" });
  assert.ok(await current.locator("button").isDisabled());
  // cancel, then confirm
  await row.locator("button", { hasText: "Revoke" }).click();
  await page.locator("#revoke-dialog").waitFor();
  assert.equal(await text("#revoke-prefix"), newKey.slice(0, 11));
  await page.click('#revoke-dialog button[value="cancel"]');
  assert.equal((await chat(newKey)).object, "chat.completion", "cancel keeps the key");
  await row.locator("button", { hasText: "Revoke" }).click();
  await page.click("#revoke-confirm");
  // a revoked key leaves the table; "Show revoked keys" brings it back, marked
  await page.waitForFunction(() => ![...document.querySelectorAll("#keys-table tbody tr")]
    .some((tr) => /from the browser/.test(tr.textContent)));
  await page.locator("#keys-revoked-toggle").waitFor();
  const nRevoked = /Show revoked keys \((\d+)\)/.exec(await text("#keys-revoked-toggle"));
  assert.ok(nRevoked && Number(nRevoked[1]) >= 1, "the toggle counts the revoked keys");
  await page.check("#keys-show-revoked");
  await page.waitForFunction(() => [...document.querySelectorAll("#keys-table tbody tr")]
    .some((tr) => /from the browser/.test(tr.textContent) && /revoked/.test(tr.textContent)));
  assert.ok(await row.locator("button", { hasText: "Revoke" }).isHidden(), "no revoke button on a revoked key");
  await page.uncheck("#keys-show-revoked");
  await page.waitForFunction(() => ![...document.querySelectorAll("#keys-table tbody tr")]
    .some((tr) => /from the browser/.test(tr.textContent)));
  await assert.rejects(chat(newKey), (e) => e.status === 401);

  // usage lists the playground's requests
  await page.click('a[data-view="usage"]');
  await page.selectOption("#usage-group", "model");
  const usageRow = page.locator("#usage-table tbody tr", { hasText: "tiny" });
  await usageRow.waitFor();
  const report = await (await fetch(srv.url + "/v1/user/usage?group_by=model",
    { headers: { authorization: "Bearer " + adminKey } })).json();
  const tiny = report.find((r) => r.model === "tiny");
  assert.ok(tiny.requests >= 3);
  const cells = await usageRow.locator("td").allTextContents();
  assert.equal(cells[0], "tiny");
  assert.equal(cells[1], tiny.requests.toLocaleString("en-US"));
  assert.equal(cells[2], tiny.prompt_tokens.toLocaleString("en-US"));
  await page.selectOption("#usage-group", "key");
  await page.locator("#usage-table thead th", { hasText: "API key" }).waitFor();

  // a narrow screen: everything reachable, nothing wider than the screen
  await page.setViewportSize({ width: 360, height: 740 });
  for (const v of ["overview", "usage", "keys", "models", "playground"]) {
    await page.click(`a[data-view="${v}"]`);
    await page.locator(`#view-${v}`).waitFor();
    const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(over <= 0, `${v}: the page is ${over}px wider than the screen`);
  }

  // a key revoked elsewhere signs the page out on its next request
  const tmp = await (await keysApi(adminKey, "POST", { name: "short-lived" })).json();
  await page.click("#signout");
  await page.fill("#signin-key", tmp.key);
  await page.click("#signin-submit");
  await page.locator("#who").filter({ hasText: "admin" }).waitFor();
  assert.equal((await keysApi(adminKey, "DELETE", undefined, tmp.id)).status, 200);
  await page.click('a[data-view="overview"]');
  await page.locator("#signin-error").filter({ hasText: "revoked" }).waitFor();
  assert.ok(await page.locator("#app").isHidden());

  assert.deepEqual(problems, [], "no page errors, CSP violations or console errors");
});
