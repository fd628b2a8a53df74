// Silica web console: a tenant's own view of the platform, served by
// `silica serve` itself (the files are embedded in the binary).
//
// Plain modern JavaScript, no framework and no build step. The page talks
// only to the server that served it, with the API key the user pasted
// (kept in sessionStorage: this tab only, gone when it closes) as
// `Authorization: Bearer`. Every piece of server data reaches the page
// through textContent / element properties, never as HTML, and the CSP
// (default-src 'self') allows no inline script.
"use strict";

const KEY_STORE = "silica.console.key";
const $ = (id) => document.getElementById(id);

// ---- small DOM helpers ----

// el("td", {className: "num"}, "text", otherNode): properties are set as
// properties (never innerHTML), strings become text nodes.
function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(e.dataset, v);
    else e[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function showError(id, err) {
  const p = $(id);
  if (!err) {
    p.hidden = true;
    p.textContent = "";
    return;
  }
  p.textContent = err instanceof Error ? err.message : String(err);
  p.hidden = false;
}

function fmtInt(n) {
  return Number(n || 0).toLocaleString("en-US");
}

function fmtTime(unixSeconds) {
  if (unixSeconds === null || unixSeconds === undefined) return "never";
  const d = new Date(unixSeconds * 1000);
  const pad = (x) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// Money arrives as decimal yuan text ("13.9981"); sums are done in
// integer micro-yuan, as the platform keeps them.
function toMicro(s) {
  const m = /^(-?)(\d+)(?:\.(\d{1,6}))?$/.exec(String(s));
  if (!m) return 0;
  const v = Number(m[2]) * 1e6 + Number((m[3] || "").padEnd(6, "0"));
  return m[1] ? -v : v;
}
function fromMicro(v) {
  const neg = v < 0;
  v = Math.abs(v);
  let frac = String(v % 1e6).padStart(6, "0").replace(/0+$/, "");
  if (frac.length < 2) frac = frac.padEnd(2, "0");
  return `${neg ? "-" : ""}${Math.floor(v / 1e6)}.${frac}`;
}

// ---- the API ----

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `The server answered ${status}.`);
    this.status = status;
    this.code = e.code || null;
    this.param = e.param || null;
  }
}

const session = {
  key: sessionStorage.getItem(KEY_STORE),
  info: null,        // the /v1/user/info data, or null
  accounts: true,    // false: the server runs without the platform
  models: null,
};

function authHeaders(extra = {}) {
  return { Authorization: `Bearer ${session.key}`, ...extra };
}

// JSON request; throws ApiError with the server's message on a non-2xx.
async function api(method, path, body) {
  const init = { method, headers: authHeaders() };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new Error(`Cannot reach the server: ${e.message}`);
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = new ApiError(res.status, data);
    if (res.status === 401 && session.info) signOut(`Signed out: ${err.message}`);
    throw err;
  }
  return data;
}

// The account routes answer 404 "unknown_url" when the server runs
// without the platform (no --data, or --no-auth).
const isNoAccounts = (e) => e instanceof ApiError && e.status === 404 && e.code === "unknown_url";

// ---- sign in / out ----

async function signIn(key) {
  session.key = key;
  try {
    const info = await api("GET", "/v1/user/info");
    session.info = info.data;
    session.accounts = true;
  } catch (e) {
    if (!isNoAccounts(e)) {
      session.key = null;
      throw e;
    }
    session.info = null;
    session.accounts = false;
  }
  sessionStorage.setItem(KEY_STORE, key);
  showApp();
}

function signOut(message) {
  sessionStorage.removeItem(KEY_STORE);
  session.key = null;
  session.info = null;
  session.models = null;
  stopStream();
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-key").value = "";
  showError("signin-error", message || null);
  $("signin-key").focus();
}

function showApp() {
  $("signin").hidden = true;
  $("app").hidden = false;
  showError("signin-error", null);
  const banner = $("banner");
  banner.hidden = session.accounts;
  banner.textContent = session.accounts ? "" :
    "This server runs without accounts (the platform is off): no balances, usage or keys here. Models and the playground work.";
  renderWho();
  route();
}

function renderWho() {
  const i = session.info;
  $("who").textContent = i ? `${i.name} · ${i.totalBalance} yuan` : "no accounts";
}

// ---- views ----

const views = {
  overview: loadOverview,
  usage: loadUsage,
  keys: loadKeys,
  models: loadModels,
  playground: loadPlayground,
};

function route() {
  let name = location.hash.replace(/^#/, "");
  if (!views[name]) name = "overview";
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== `view-${name}`;
  for (const a of document.querySelectorAll("#nav a"))
    a.classList.toggle("active", a.dataset.view === name);
  views[name]();
}

async function refreshInfo() {
  if (!session.accounts) return;
  const info = await api("GET", "/v1/user/info");
  session.info = info.data;
  renderWho();
}

async function loadOverview() {
  $("base-url").textContent = `${location.origin}/v1`;
  $("overview-cards").hidden = !session.accounts;
  showError("overview-error", null);
  if (!session.accounts) return;
  try {
    await refreshInfo();
  } catch (e) {
    showError("overview-error", e);
    return;
  }
  const i = session.info;
  $("acct-name").textContent = i.name;
  $("acct-id").textContent = `id ${i.id} · ${i.status}`;
  $("bal-total").textContent = i.totalBalance;
  $("bal-gift").textContent = i.balance;
  $("bal-charge").textContent = i.chargeBalance;
}

const USAGE_NUMS = [
  ["requests", "Requests"], ["prompt_tokens", "Prompt"], ["cached_tokens", "Cached"],
  ["completion_tokens", "Completion"], ["reasoning_tokens", "Reasoning"],
  ["total_tokens", "Total tokens"], ["cost", "Cost (yuan)"],
];
const USAGE_GROUPS = { day: "Day", model: "Model", key: "API key" };

async function loadUsage() {
  const table = $("usage-table");
  const group = $("usage-group").value;
  showError("usage-error", null);
  if (!session.accounts) {
    showError("usage-error", "Usage needs accounts; this server runs without them.");
    return;
  }
  let rows;
  try {
    rows = await api("GET", `/v1/user/usage?group_by=${encodeURIComponent(group)}`);
  } catch (e) {
    showError("usage-error", e);
    return;
  }
  const head = table.tHead.rows[0];
  head.replaceChildren(el("th", {}, USAGE_GROUPS[group]),
    ...USAGE_NUMS.map(([, label]) => el("th", { className: "num" }, label)));
  const body = table.tBodies[0];
  body.replaceChildren(...rows.map((r) => el("tr", {},
    el("td", {}, r[group] ?? ""),
    ...USAGE_NUMS.map(([k]) => el("td", { className: "num" }, k === "cost" ? r[k] : fmtInt(r[k]))))));
  const sum = (k) => rows.reduce((a, r) => a + Number(r[k] || 0), 0);
  table.tFoot.replaceChildren(rows.length < 2 ? "" : el("tr", {}, el("th", {}, "Total"),
    ...USAGE_NUMS.map(([k]) => el("th", { className: "num" },
      k === "cost" ? fromMicro(rows.reduce((a, r) => a + toMicro(r.cost), 0)) : fmtInt(sum(k))))));
  $("usage-empty").hidden = rows.length > 0;
}

async function loadKeys() {
  showError("keys-error", null);
  $("key-form").hidden = !session.accounts;
  if (!session.accounts) {
    showError("keys-error", "API keys need accounts; this server runs without them.");
    $("keys-table").tBodies[0].replaceChildren();
    return;
  }
  let list;
  try {
    list = await api("GET", "/v1/user/keys");
  } catch (e) {
    showError("keys-error", e);
    return;
  }
  // Revoked keys stay in the list (the ledger still names them) but are
  // hidden unless asked for: the table is the keys that can still be used.
  const all = list.data.slice().sort((a, b) => b.id - a.id);
  const revoked = all.filter((k) => !k.enabled).length;
  $("keys-revoked-count").textContent = String(revoked);
  $("keys-revoked-toggle").hidden = revoked === 0;
  const keys = $("keys-show-revoked").checked ? all : all.filter((k) => k.enabled);
  $("keys-table").tBodies[0].replaceChildren(...keys.map((k) => {
    const status = !k.enabled ? "revoked" : k.expired ? "expired" : "active";
    const revoke = el("button", { type: "button", className: "danger small" }, "Revoke");
    if (!k.enabled) revoke.hidden = true;
    if (k.current) {
      revoke.disabled = true;
      revoke.title = "This is the key you are signed in with; revoke it from another key.";
    }
    revoke.addEventListener("click", () => confirmRevoke(k));
    return el("tr", { dataset: { keyId: String(k.id) } },
      el("td", {}, k.name || "(no name)", k.current ? el("span", { className: "tag" }, "this key") : null),
      el("td", {}, el("code", {}, `${k.prefix}…`)),
      el("td", {}, el("span", { className: `status ${status}` }, status)),
      el("td", {}, fmtTime(k.expires_at)),
      el("td", {}, fmtTime(k.created_at)),
      el("td", { className: "num" }, revoke));
  }));
}

let revoking = null;
function confirmRevoke(k) {
  revoking = k;
  $("revoke-name").textContent = k.name || "(no name)";
  $("revoke-prefix").textContent = k.prefix;
  $("revoke-dialog").showModal();
}

async function onRevokeClosed() {
  const k = revoking;
  revoking = null;
  if (!k || $("revoke-dialog").returnValue !== "revoke") return;
  try {
    await api("DELETE", `/v1/user/keys/${encodeURIComponent(k.id)}`);
  } catch (e) {
    showError("keys-error", e);
    return;
  }
  await loadKeys();
}

function expiryFromForm() {
  const v = $("key-expiry").value;
  if (v === "") return null;
  if (v === "date") {
    const d = $("key-date").value; // YYYY-MM-DD, the end of that day here
    if (!d) throw new Error("Pick the date the key expires on.");
    return Math.floor(new Date(`${d}T23:59:59`).getTime() / 1000);
  }
  return Math.floor(Date.now() / 1000) + Number(v) * 86400;
}

async function onCreateKey(ev) {
  ev.preventDefault();
  showError("key-form-error", null);
  let body;
  try {
    body = { name: $("key-name").value.trim(), expires_at: expiryFromForm() };
  } catch (e) {
    showError("key-form-error", e);
    return;
  }
  let created;
  try {
    created = await api("POST", "/v1/user/keys", body);
  } catch (e) {
    showError("key-form-error", e);
    return;
  }
  $("key-form").reset();
  $("key-date-field").hidden = true;
  $("new-key-value").value = created.key;
  $("new-key-copied").textContent = "";
  $("new-key").hidden = false;
  $("new-key-value").select();
  await loadKeys();
}

async function copyNewKey() {
  const input = $("new-key-value");
  let ok = false;
  try {
    await navigator.clipboard.writeText(input.value);
    ok = true;
  } catch {
    // no clipboard API (an insecure context): copy the selection instead
    input.select();
    ok = document.execCommand && document.execCommand("copy");
  }
  $("new-key-copied").textContent = ok ? "Copied to the clipboard." : "Select the key and copy it by hand.";
}

function forgetNewKey() {
  // the secret leaves the page: it cannot be shown again
  $("new-key-value").value = "";
  $("new-key").hidden = true;
}

async function fetchModels() {
  if (!session.models) session.models = (await api("GET", "/v1/models")).data;
  return session.models;
}

const CAPS = ["chat", "completion", "fim", "tools", "reasoning", "embeddings", "rerank"];

// model id -> its price row (decimal yuan per million tokens); a model
// with no row is free. Empty without accounts.
async function fetchPrices() {
  if (!session.accounts) return new Map();
  const list = await api("GET", "/v1/user/prices");
  return new Map(list.data.map((p) => [p.model, p]));
}

function priceText(m, p) {
  if (!session.accounts) return "";
  if (!p) return "free";
  const caps = m.capabilities || {};
  if (caps.embeddings || caps.rerank) return `${p.input} input`;
  return `${p.input} in · ${p.cached_input} cached · ${p.output} out`;
}

async function loadModels() {
  showError("models-error", null);
  let models, prices;
  try {
    [models, prices] = await Promise.all([fetchModels(), fetchPrices()]);
  } catch (e) {
    showError("models-error", e);
    return;
  }
  $("models-table").tBodies[0].replaceChildren(...models.map((m) => {
    const caps = m.capabilities || {};
    const tags = CAPS.filter((c) => caps[c]).map((c) => el("span", { className: "tag" }, c));
    if (caps.tool_calls) tags.push(el("span", { className: "tag" }, `tool calls: ${caps.tool_calls}`));
    let action = null;
    if (caps.chat) {
      action = el("button", { type: "button", className: "small" }, "Try");
      action.addEventListener("click", () => {
        playgroundModel = m.id;
        location.hash = "#playground";
      });
    }
    return el("tr", {},
      el("td", {}, el("code", {}, m.id)),
      el("td", {}, m.sub_type || m.type || ""),
      el("td", { className: "num" }, m.context_length ? fmtInt(m.context_length) : ""),
      el("td", { className: "price" }, priceText(m, prices.get(m.id))),
      el("td", { className: "tags" }, ...tags),
      el("td", { className: "num" }, action));
  }));
}

// ---- playground ----

let playgroundModel = null;
let stream = null; // { controller } while a request runs

async function loadPlayground() {
  showError("play-error", null);
  let models;
  try {
    models = await fetchModels();
  } catch (e) {
    showError("play-error", e);
    return;
  }
  const select = $("play-model");
  const chat = models.filter((m) => m.capabilities && m.capabilities.chat);
  const keep = playgroundModel || select.value;
  select.replaceChildren(...chat.map((m) => el("option", { value: m.id }, m.id)));
  if (chat.some((m) => m.id === keep)) select.value = keep;
  if (!chat.length) showError("play-error", "This server has no chat model.");
}

function stopStream() {
  if (stream) stream.controller.abort();
}

function setRunning(running) {
  $("play-send").disabled = running;
  $("play-stop").disabled = !running;
}

// Reads a text/event-stream body and calls onData with each event's data
// (the "data:" lines of one event joined by "\n").
async function readSSE(body, onData) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    buf += decoder.decode(value || new Uint8Array(), { stream: !done });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      let line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.endsWith("\r")) line = line.slice(0, -1);
      if (line === "") {
        if (data.length && onData(data.join("\n")) === false) return;
        data = [];
      } else if (line.startsWith("data:")) {
        data.push(line.slice(5).replace(/^ /, ""));
      } // comments (":") and other fields are ignored
    }
    if (done) {
      if (data.length) onData(data.join("\n"));
      return;
    }
  }
}

async function onSend(ev) {
  ev.preventDefault();
  if (stream) return;
  showError("play-error", null);
  const model = $("play-model").value;
  const system = $("play-system").value.trim();
  const user = $("play-user").value;
  if (!model) {
    showError("play-error", "Pick a model.");
    return;
  }
  const messages = [];
  if (system) messages.push({ role: "system", content: system });
  messages.push({ role: "user", content: user });
  const req = {
    model, messages, stream: true, stream_options: { include_usage: true },
    temperature: Number($("play-temperature").value),
    max_tokens: Number($("play-max-tokens").value),
  };
  const seed = $("play-seed").value.trim();
  if (seed !== "") req.seed = Number(seed); // the same seed and settings give the same answer
  const answer = $("play-answer");
  const reasoning = $("play-reasoning");
  const status = $("play-status");
  answer.textContent = "";
  reasoning.textContent = "";
  $("play-reasoning-box").hidden = true;
  $("play-output").hidden = false;
  answer.classList.add("streaming");
  status.textContent = "Waiting for the first token…";
  playgroundModel = model;
  stream = { controller: new AbortController() };
  setRunning(true);
  const t0 = performance.now();
  let tFirst = null;
  let usage = null;
  let finish = null;
  try {
    const res = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: authHeaders({ "Content-Type": "application/json", Accept: "text/event-stream" }),
      body: JSON.stringify(req),
      signal: stream.controller.signal,
    });
    if (!res.ok) {
      let body = null;
      try { body = await res.json(); } catch { body = null; }
      throw new ApiError(res.status, body);
    }
    await readSSE(res.body, (data) => {
      if (data === "[DONE]") return false;
      let chunk;
      try { chunk = JSON.parse(data); } catch { return true; }
      if (chunk.error) throw new ApiError(500, chunk);
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices || []) {
        const d = c.delta || {};
        if (d.reasoning_content) {
          $("play-reasoning-box").hidden = false;
          reasoning.append(d.reasoning_content);
        }
        if (d.content) answer.append(d.content);
        if ((d.content || d.reasoning_content) && tFirst === null) {
          tFirst = performance.now();
          status.textContent = "Generating…";
        }
        if (c.finish_reason) finish = c.finish_reason;
      }
      return true;
    });
    status.textContent = describeDone(finish, usage, t0, tFirst);
  } catch (e) {
    if (e.name === "AbortError") {
      status.textContent = "Stopped.";
    } else {
      stream.controller.abort(); // an error inside the stream: stop reading it
      status.textContent = "";
      showError("play-error", e);
    }
  } finally {
    answer.classList.remove("streaming");
    stream = null;
    setRunning(false);
    refreshInfo().catch(() => {});
  }
}

function describeDone(finish, usage, t0, tFirst) {
  const parts = [`Finished (${finish || "stop"})`];
  const secs = (performance.now() - t0) / 1000;
  if (usage) {
    parts.push(`${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion = ${usage.total_tokens} tokens`);
    const r = usage.completion_tokens_details && usage.completion_tokens_details.reasoning_tokens;
    if (r) parts.push(`${r} reasoning`);
  }
  if (tFirst !== null) parts.push(`first token ${Math.round(tFirst - t0)} ms`);
  parts.push(`${secs.toFixed(2)} s`);
  return parts.join(" · ");
}

// ---- start ----

function init() {
  $("signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const key = $("signin-key").value.trim();
    if (!key) return;
    $("signin-submit").disabled = true;
    showError("signin-error", null);
    try {
      await signIn(key);
    } catch (e) {
      showError("signin-error", e);
    } finally {
      $("signin-submit").disabled = false;
    }
  });
  $("signout").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", () => { if (session.key) route(); });
  $("usage-form").addEventListener("submit", (ev) => { ev.preventDefault(); loadUsage(); });
  $("usage-group").addEventListener("change", () => loadUsage());
  $("key-form").addEventListener("submit", onCreateKey);
  $("key-expiry").addEventListener("change", () => {
    $("key-date-field").hidden = $("key-expiry").value !== "date";
  });
  $("new-key-copy").addEventListener("click", copyNewKey);
  $("new-key-done").addEventListener("click", forgetNewKey);
  $("revoke-dialog").addEventListener("close", onRevokeClosed);
  $("keys-show-revoked").addEventListener("change", () => loadKeys());
  $("play-form").addEventListener("submit", onSend);
  $("play-stop").addEventListener("click", stopStream);
  $("play-user").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) $("play-form").requestSubmit();
  });
  if (session.key) {
    signIn(session.key).catch((e) => signOut(e.message));
  } else {
    signOut();
  }
}

init();
