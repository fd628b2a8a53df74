// The Anthropic Messages API (POST /v1/messages, /v1/messages/count_tokens,
// also under /anthropic) through the official @anthropic-ai/sdk:
// client.messages.create / stream / countTokens and models.list against
// tiny random-weight models with real tokenizers and templates (the Qwen3
// tokenizer of the default tiny model, Qwen2.5 for Hermes-style tool calls,
// and a ChatML template that opens <think> for thinking blocks). A second
// server with --data checks keys (x-api-key and Bearer), errors through the
// SDK's classes and billing (one ledger row per request with the usage the
// message shows; count_tokens is free).
//
// Random weights: answers are greedy (temperature 0) where two paths must
// agree; tool calls come from the grammar (tool_choice any / tool), not
// from the model's wits. Newlines are banned with logit_bias (an extension
// passed through to the chat request) where text must be non-empty: the
// tiny models' greedy answers are otherwise only "\n".
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { BIN, startServer, tinyModel, makeModel, waitIdle } from "./lib/server.mjs";
import { adminCli } from "./lib/admin.mjs";

// ChatML whose generation prompt leaves <think> open, so the output starts
// in thinking (the budget closes it after a few tokens).
const THINK_TEMPLATE = `{%- for message in messages %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endfor %}{%- if add_generation_prompt %}<|im_start|>assistant
<think>
{% endif %}`;

const WEATHER = {
  name: "get_weather",
  description: "Get the current weather in a city",
  input_schema: {
    type: "object",
    properties: {
      city: { type: "string", enum: ["Paris", "Tokyo", "Lima"] },
      unit: { type: "string", enum: ["celsius", "fahrenheit"] },
    },
    required: ["city", "unit"],
    additionalProperties: false,
  },
};
const CHAT_WEATHER = { type: "function", function: { name: WEATHER.name, description: WEATHER.description, parameters: WEATHER.input_schema } };
const ASK = "What is the weather like in Paris today?";
const NO_NL = { 198: -100, 271: -100 };

let srv, client, openai, dir, psrv;
const keys = {};


const { admin, newAccount } = adminCli(() => ["--data", dir]);
const account = newAccount;

// One row per ledger entry: { id, n, prompt, cached, completion }.
function ledger(acct) {
  const out = admin("usage", "--by", "request", "--format", "csv", "--account", String(acct));
  const [head, ...rows] = out.trim().split("\n");
  const cols = head.split(",");
  return rows.filter(Boolean).map((l) => {
    const c = l.split(",");
    const at = (n) => Number(c[cols.indexOf(n)]);
    return { id: c[0], n: Number(c[1]), prompt: at("prompt_tokens"), cached: at("cached_tokens"), completion: at("completion_tokens") };
  });
}

before(async () => {
  const tmp = mkdtempSync(path.join(tmpdir(), "silica-anth-"));
  const tpl = path.join(tmp, "think.jinja");
  writeFileSync(tpl, THINK_TEMPLATE);
  const models = { tiny: tinyModel(), qwen: makeModel("qwen2_5"), think: makeModel("qwen3", "qwen2", tpl) };
  srv = await startServer({ models, args: ["--ctx", "1024"] });
  client = new Anthropic({ baseURL: srv.url, apiKey: "none", maxRetries: 0 });
  openai = new OpenAI({ baseURL: srv.url + "/v1", apiKey: "none", maxRetries: 0 });

  dir = mkdtempSync(path.join(tmpdir(), "silica-anth-plat-"));
  keys.alice = account("alice");
  keys.poor = account("poor");
  admin("accounts", "credit", String(keys.poor.id), "--gift", "-14");
  admin("models", "set-price", "tiny", "--input", "100", "--output", "100");
  psrv = await startServer({ args: ["--data", dir, "--ctx", "512"] });
});

after(async () => {
  if (srv) assert.equal(await srv.stop(), 0, srv.log());
  if (psrv) assert.equal(await psrv.stop(), 0, psrv.log());
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// Collects a stream's events (ping is the SDK's to skip), its text events
// and its final message.
async function streamed(params, c = client) {
  const stream = c.messages.stream(params);
  let text = "", thinking = "";
  stream.on("text", (d) => { text += d; });
  stream.on("thinking", (d) => { thinking += d; });
  const events = [];
  for await (const ev of stream) events.push(ev);
  return { events, text, thinking, final: await stream.finalMessage() };
}

const textOf = (m) => m.content.filter((b) => b.type === "text").map((b) => b.text).join("");
const thinkingOf = (m) => m.content.filter((b) => b.type === "thinking").map((b) => b.thinking).join("");
const promptTokens = (m) => m.usage.input_tokens + m.usage.cache_read_input_tokens;
// A block without the ids the server makes anew per request.
const blockKey = (b) => b.type === "tool_use" ? [b.type, b.name, JSON.stringify(b.input)] : [b.type, b.text ?? b.thinking];

function checkShape(m, model) {
  assert.match(m.id, /^msg_[0-9a-f]{48}$/);
  assert.equal(m.type, "message");
  assert.equal(m.role, "assistant");
  assert.equal(m.model, model);
  assert.ok(Array.isArray(m.content));
  assert.ok(["end_turn", "max_tokens", "stop_sequence", "tool_use"].includes(m.stop_reason), m.stop_reason);
  for (const k of ["input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"])
    assert.ok(Number.isInteger(m.usage[k]) && m.usage[k] >= 0, k);
  for (const b of m.content) {
    assert.ok(["text", "thinking", "tool_use"].includes(b.type), b.type);
    if (b.type === "thinking") assert.equal(b.signature, "");
    if (b.type === "tool_use") {
      assert.match(b.id, /^toolu_[A-Za-z0-9]{24}$/);
      assert.equal(typeof b.input, "object");
    }
  }
}

test("text: the message, usage, and the chat route's greedy answer for the same conversation", async () => {
  const params = { model: "tiny", max_tokens: 12, temperature: 0, messages: [{ role: "user", content: "Hello there" }], logit_bias: NO_NL };
  const long = "Paris is the capital of France. ".repeat(8) + "Tell me more about it.";
  const m = await client.messages.create(params);
  checkShape(m, "tiny");
  assert.ok(m.usage.output_tokens > 0 && m.usage.output_tokens <= 12);
  const c = await openai.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "Hello there" }],
    max_tokens: 12, temperature: 0, logit_bias: NO_NL });
  assert.equal(promptTokens(m), c.usage.prompt_tokens);
  assert.equal(m.usage.output_tokens, c.usage.completion_tokens);
  assert.equal(thinkingOf(m), c.choices[0].message.reasoning_content ?? "");
  assert.equal(textOf(m), c.choices[0].message.content ?? "");
  assert.ok((thinkingOf(m) + textOf(m)).length > 0);
  // a long prompt sent twice: the second comes from the prefix cache, and
  // input_tokens leaves out what it served (input + cache read = the prompt)
  const lp = { ...params, messages: [{ role: "user", content: long }] };
  const first = await client.messages.create(lp);
  const again = await client.messages.create(lp);
  assert.equal(promptTokens(again), promptTokens(first));
  assert.ok(again.usage.cache_read_input_tokens > 0, JSON.stringify(again.usage));
  assert.equal(again.usage.cache_creation_input_tokens, 0);
  assert.deepEqual(again.content, first.content);
  const cc = await openai.chat.completions.create({ model: "tiny", messages: lp.messages, max_tokens: 12, temperature: 0, logit_bias: NO_NL });
  assert.equal(promptTokens(again), cc.usage.prompt_tokens);
  // content blocks of text are the same as a string
  const blocks = await client.messages.create({ ...params, messages: [{ role: "user", content: [{ type: "text", text: "Hello there" }] }] });
  assert.deepEqual(blocks.content, m.content);
  // under /anthropic (DeepSeek's base URL shape) it is the same API
  const under = new Anthropic({ baseURL: srv.url + "/anthropic", apiKey: "none", maxRetries: 0 });
  assert.deepEqual((await under.messages.create(params)).content, m.content);
});

test("system: a string or text blocks is the chat request's system message", async () => {
  const messages = [{ role: "user", content: "Hello there" }];
  const m = await client.messages.create({ model: "qwen", max_tokens: 6, temperature: 0, system: "Answer in French.", messages, logit_bias: NO_NL });
  const c = await openai.chat.completions.create({ model: "qwen", max_tokens: 6, temperature: 0, logit_bias: NO_NL,
    messages: [{ role: "system", content: "Answer in French." }, ...messages] });
  assert.equal(promptTokens(m), c.usage.prompt_tokens);
  assert.equal(textOf(m), c.choices[0].message.content);
  const b = await client.messages.create({ model: "qwen", max_tokens: 6, temperature: 0, messages, logit_bias: NO_NL,
    system: [{ type: "text", text: "Answer in French.", cache_control: { type: "ephemeral" } }] });
  assert.equal(promptTokens(b), promptTokens(m));
  assert.equal(textOf(b), textOf(m));
});

test("streaming: event order, deltas add up to the final message, on('text'), same as non-streamed", async () => {
  const params = { model: "qwen", max_tokens: 20, temperature: 0, messages: [{ role: "user", content: "Tell me about Paris." }], logit_bias: NO_NL };
  const { events, text, final } = await streamed(params);
  const types = events.map((e) => e.type);
  assert.deepEqual(types.slice(0, 3), ["message_start", "content_block_start", "content_block_delta"]);
  assert.deepEqual(types.slice(-3), ["content_block_stop", "message_delta", "message_stop"]);
  const deltas = events.filter((e) => e.type === "content_block_delta");
  assert.ok(deltas.every((d) => d.index === 0 && d.delta.type === "text_delta"));
  assert.equal(deltas.map((d) => d.delta.text).join(""), textOf(final));
  assert.equal(text, textOf(final));
  assert.ok(text.length > 0);
  checkShape(final, "qwen");
  const md = events.at(-2);
  assert.equal(md.delta.stop_reason, final.stop_reason);
  assert.equal(md.usage.output_tokens, final.usage.output_tokens);
  // the same as the non-streamed message (greedy)
  const m = await client.messages.create(params);
  assert.deepEqual(m.content, final.content);
  assert.equal(m.stop_reason, final.stop_reason);
  assert.equal(promptTokens(m), promptTokens(final));
  assert.equal(m.usage.output_tokens, final.usage.output_tokens);
  // the raw wire: "event:" lines name each data line's type; a ping after message_start
  const raw = await fetch(srv.url + "/v1/messages", { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...params, stream: true }) });
  assert.equal(raw.status, 200);
  assert.equal(raw.headers.get("content-type"), "text/event-stream");
  const blocks = (await raw.text()).trim().split("\n\n");
  for (const b of blocks) {
    const [ev, data] = b.split("\n");
    assert.equal(ev.slice(7), JSON.parse(data.slice(6)).type);
  }
  assert.deepEqual(blocks.slice(0, 2).map((b) => b.split("\n")[0]), ["event: message_start", "event: ping"]);
  const start = JSON.parse(blocks[0].split("\n")[1].slice(6)).message;
  assert.deepEqual(start.content, []);
  assert.equal(start.stop_reason, null);
  assert.equal(start.usage.output_tokens, 0);
  assert.equal(start.usage.input_tokens + start.usage.cache_read_input_tokens, promptTokens(m));
  await waitIdle(srv.url);
});

test("max_tokens cuts: stop_reason max_tokens", async () => {
  const params = { model: "qwen", max_tokens: 3, messages: [{ role: "user", content: "Write a long story." }], logit_bias: NO_NL };
  const m = await client.messages.create(params);
  assert.equal(m.stop_reason, "max_tokens");
  assert.equal(m.stop_sequence, null);
  assert.equal(m.usage.output_tokens, 3);
  const s = await streamed(params);
  assert.equal(s.final.stop_reason, "max_tokens");
  assert.equal(s.final.usage.output_tokens, 3);
});

test("stop_sequences: stop_reason stop_sequence names the one that matched; the text stops before it", async () => {
  const base = { model: "qwen", max_tokens: 24, temperature: 0, messages: [{ role: "user", content: "Tell me about Paris." }], logit_bias: NO_NL };
  const full = textOf(await client.messages.create(base));
  const chars = [...full];
  assert.ok(chars.length >= 8, full);
  const stop = chars.slice(4, 7).join("");
  const want = full.slice(0, full.indexOf(stop));
  const m = await client.messages.create({ ...base, stop_sequences: ["never-there", stop] });
  assert.equal(m.stop_reason, "stop_sequence");
  assert.equal(m.stop_sequence, stop);
  assert.equal(textOf(m), want);
  const s = await streamed({ ...base, stop_sequences: [stop] });
  assert.equal(s.final.stop_reason, "stop_sequence");
  assert.equal(s.final.stop_sequence, stop);
  assert.equal(s.text, want);
  // no match: end_turn or max_tokens, stop_sequence null
  const none = await client.messages.create({ ...base, stop_sequences: ["never-there"] });
  assert.ok(["end_turn", "max_tokens"].includes(none.stop_reason));
  assert.equal(none.stop_sequence, null);
});

test("tools: tool_use (any / tool), streamed input_json_delta, the tool_result round trip as the chat route renders it", async () => {
  const params = { model: "qwen", max_tokens: 120, temperature: 0, tools: [WEATHER], tool_choice: { type: "any", disable_parallel_tool_use: true },
    messages: [{ role: "user", content: ASK }] };
  const m1 = await client.messages.create(params);
  checkShape(m1, "qwen");
  assert.equal(m1.stop_reason, "tool_use");
  const uses = m1.content.filter((b) => b.type === "tool_use");
  assert.equal(uses.length, 1, JSON.stringify(m1.content));
  const use = uses[0];
  assert.equal(use.name, "get_weather");
  assert.ok(["Paris", "Tokyo", "Lima"].includes(use.input.city) && ["celsius", "fahrenheit"].includes(use.input.unit), JSON.stringify(use.input));

  // streamed: the input arrives as partial_json pieces that add up to it
  const s = await streamed(params);
  const starts = s.events.filter((e) => e.type === "content_block_start" && e.content_block.type === "tool_use");
  assert.equal(starts.length, 1);
  assert.deepEqual(starts[0].content_block.input, {});
  const pieces = s.events.filter((e) => e.type === "content_block_delta" && e.delta.type === "input_json_delta");
  assert.ok(pieces.length >= 1);
  assert.deepEqual(JSON.parse(pieces.map((e) => e.delta.partial_json).join("")), use.input);
  assert.deepEqual(s.final.content.map(blockKey), m1.content.map(blockKey));
  assert.equal(s.final.stop_reason, "tool_use");

  // the result goes back in a user message; the model answers
  const result = '{"temperature": 21, "sky": "sunny"}';
  const messages = [{ role: "user", content: ASK }, { role: "assistant", content: m1.content },
    { role: "user", content: [{ type: "tool_result", tool_use_id: use.id, content: result }] }];
  const m2 = await client.messages.create({ model: "qwen", max_tokens: 8, temperature: 0, tools: [WEATHER], messages, logit_bias: NO_NL });
  assert.equal(m2.stop_reason === "tool_use", m2.content.some((b) => b.type === "tool_use"));
  // the same prompt and answer as the chat request with the call and the tool message
  const c = await openai.chat.completions.create({ model: "qwen", max_tokens: 8, temperature: 0, tools: [CHAT_WEATHER], logit_bias: NO_NL,
    messages: [{ role: "user", content: ASK },
      { role: "assistant", content: textOf(m1) || null, tool_calls: [{ id: use.id, type: "function", function: { name: use.name, arguments: JSON.stringify(use.input) } }] },
      { role: "tool", tool_call_id: use.id, content: result }] });
  assert.equal(promptTokens(m2), c.usage.prompt_tokens);
  assert.equal(textOf(m2), c.choices[0].message.content ?? "");
  // tool_result content as text blocks is the same
  const asBlocks = await client.messages.create({ model: "qwen", max_tokens: 8, temperature: 0, tools: [WEATHER], logit_bias: NO_NL,
    messages: [...messages.slice(0, 2), { role: "user", content: [{ type: "tool_result", tool_use_id: use.id, content: [{ type: "text", text: result }] }] }] });
  assert.equal(promptTokens(asBlocks), promptTokens(m2));

  // a named tool
  const named = await client.messages.create({ ...params, tool_choice: { type: "tool", name: "get_weather" } });
  assert.equal(named.content.filter((b) => b.type === "tool_use" && b.name === "get_weather").length, 1);
  assert.equal(named.stop_reason, "tool_use");
  // none: no tool_use
  const none = await client.messages.create({ ...params, max_tokens: 6, tool_choice: { type: "none" } });
  assert.ok(none.content.every((b) => b.type !== "tool_use"));
  await waitIdle(srv.url);
});

test("thinking: thinking blocks before the text (streamed as thinking_delta); sent back as the turn's reasoning", async () => {
  const params = { model: "think", max_tokens: 16, temperature: 0, thinking: { type: "enabled", budget_tokens: 4 },
    messages: [{ role: "user", content: "Why is the sky blue?" }], logit_bias: { 198: -100 } };
  const m = await client.messages.create(params);
  checkShape(m, "think");
  assert.equal(m.content[0].type, "thinking");
  assert.ok(m.content[0].thinking.length > 0);
  assert.ok(m.content.slice(1).every((b) => b.type === "text"));
  assert.ok(!textOf(m).includes("think>"));
  // the chat route with the same budget writes the same reasoning and answer
  const c = await openai.chat.completions.create({ model: "think", max_tokens: 16, temperature: 0, thinking_budget: 4,
    messages: params.messages, logit_bias: { 198: -100 } });
  assert.equal(thinkingOf(m), c.choices[0].message.reasoning_content);
  assert.equal(textOf(m), c.choices[0].message.content ?? "");
  assert.equal(m.usage.output_tokens, c.usage.completion_tokens);

  const s = await streamed(params);
  assert.equal(s.thinking, thinkingOf(s.final));
  const td = s.events.filter((e) => e.type === "content_block_delta" && e.delta.type === "thinking_delta");
  assert.ok(td.length > 0 && td.every((e) => e.index === 0));
  assert.deepEqual(s.final.content, m.content);

  // disabled: the template's thinking switch is off (Qwen3's enable_thinking)
  const off = await client.messages.create({ model: "tiny", max_tokens: 4, messages: [{ role: "user", content: "Hi" }], thinking: { type: "disabled" } });
  assert.ok(off.content.every((b) => b.type !== "thinking"));

  // a thinking block sent back is the assistant turn's reasoning_content
  const turns = (assistant) => [{ role: "user", content: "Hi" }, assistant, { role: "user", content: "And then?" }];
  const back = await client.messages.create({ model: "tiny", max_tokens: 1,
    messages: turns({ role: "assistant", content: [{ type: "thinking", thinking: "The user greets me.", signature: "" }, { type: "text", text: "Hello!" }] }) });
  const chat = await openai.chat.completions.create({ model: "tiny", max_tokens: 1,
    messages: turns({ role: "assistant", content: "Hello!", reasoning_content: "The user greets me." }) });
  assert.equal(promptTokens(back), chat.usage.prompt_tokens);
});

test("count_tokens: the prompt's length, equal to the usage of the same request", async () => {
  const body = { model: "qwen", system: "Be brief.", tools: [WEATHER], messages: [{ role: "user", content: ASK }] };
  const n = await client.messages.countTokens(body);
  assert.deepEqual(Object.keys(n), ["input_tokens"]);
  const m = await client.messages.create({ ...body, max_tokens: 1 });
  assert.equal(n.input_tokens, promptTokens(m));
  const under = new Anthropic({ baseURL: srv.url + "/anthropic", apiKey: "none", maxRetries: 0 });
  assert.equal((await under.messages.countTokens(body)).input_tokens, n.input_tokens);
  await assert.rejects(client.messages.countTokens({ model: "qwen", messages: [] }),
    (e) => e instanceof Anthropic.BadRequestError && e.error.error.type === "invalid_request_error");
});

test("models: Anthropic's list shape with anthropic-version or under /anthropic; OpenAI's otherwise", async () => {
  const page = await client.models.list();
  const ids = page.data.map((m) => m.id).sort();
  assert.deepEqual(ids, ["qwen", "think", "tiny"]);
  for (const m of page.data) {
    assert.equal(m.type, "model");
    assert.equal(m.display_name, m.id);
    assert.ok(!Number.isNaN(Date.parse(m.created_at)));
  }
  assert.equal(page.has_more, false);
  const one = await client.models.retrieve("qwen");
  assert.equal(one.id, "qwen");
  const raw = await (await fetch(srv.url + "/anthropic/v1/models")).json();
  assert.equal(raw.first_id, raw.data[0].id);
  assert.equal(raw.last_id, raw.data.at(-1).id);
  const oai = await (await fetch(srv.url + "/v1/models")).json();
  assert.equal(oai.object, "list");
  assert.equal(oai.data[0].object, "model");
});

test("errors: Anthropic's shape and statuses through the SDK's classes", async () => {
  const bad = async (body, status, re) => {
    const r = await fetch(srv.url + "/v1/messages", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify(body) });
    assert.equal(r.status, status, JSON.stringify(body));
    const e = await r.json();
    assert.equal(e.type, "error");
    assert.equal(e.error.type, status === 404 ? "not_found_error" : "invalid_request_error");
    assert.match(e.error.message, re);
  };
  const msgs = [{ role: "user", content: "Hi" }];
  await bad({ model: "tiny", messages: msgs }, 400, /max_tokens/);
  await bad({ model: "tiny", max_tokens: 4 }, 400, /messages/);
  await bad({ model: "tiny", max_tokens: 4, messages: [] }, 400, /messages/);
  await bad({ model: "tiny", max_tokens: 4, messages: msgs, bogus: 1 }, 400, /bogus/);
  await bad({ model: "tiny", max_tokens: 4, messages: msgs, temperature: 1.5 }, 400, /temperature/);
  await bad({ model: "tiny", max_tokens: 4, messages: [{ role: "user", content: [{ type: "image", source: { type: "base64", media_type: "image/png", data: "AAAA" } }] }] },
    400, /messages\[0\]\.content\[0\].*image/);
  await bad({ model: "tiny", max_tokens: 4, messages: [{ role: "user", content: [{ type: "document", source: { type: "text", media_type: "text/plain", data: "x" } }] }] },
    400, /document/);
  await bad({ model: "tiny", max_tokens: 4, messages: msgs, tools: [{ type: "web_search_20250305", name: "web_search" }] }, 400, /tools\[0\]\.type.*web_search_20250305/);
  await bad({ model: "tiny", max_tokens: 4, messages: msgs, mcp_servers: [{ type: "url", url: "https://x", name: "x" }] }, 400, /mcp_servers/);
  await bad({ model: "tiny", max_tokens: 4, messages: [{ role: "tool", content: "x" }] }, 400, /role/);
  await bad({ model: "tiny", max_tokens: 4, messages: msgs, tools: [{ name: "bad name!", input_schema: { type: "object" } }] }, 400, /tools\[0\]\.name/);
  await bad({ model: "tiny", max_tokens: 4, messages: msgs, stop_sequences: ["a", "b", "c", "d", "e"] }, 400, /stop_sequences/);
  await bad({ model: "tiny", max_tokens: 100000, messages: msgs }, 400, /max_tokens/);
  await bad({ model: "nope", max_tokens: 4, messages: msgs }, 404, /nope/);
  // accepted and ignored: what clients send that changes nothing here
  const ok = await client.messages.create({ model: "tiny", max_tokens: 2, messages: msgs, service_tier: "auto", metadata: { user_id: "u1" },
    container: null, mcp_servers: [], inference_geo: "us" });
  assert.equal(ok.type, "message");
  // through the SDK: its error classes and the body
  await assert.rejects(client.messages.create({ model: "tiny", messages: msgs }),
    (e) => e instanceof Anthropic.BadRequestError && e.status === 400 && e.error.type === "error" && e.error.error.type === "invalid_request_error");
  await assert.rejects(client.messages.create({ model: "nope", max_tokens: 4, messages: msgs }),
    (e) => e instanceof Anthropic.NotFoundError && e.error.error.type === "not_found_error");
  // an unknown path under /anthropic is Anthropic's 404; GET on /v1/messages a 405
  const r = await fetch(srv.url + "/anthropic/v1/complete", { method: "POST", body: "{}" });
  assert.equal(r.status, 404);
  assert.equal((await r.json()).error.type, "not_found_error");
  const g = await fetch(srv.url + "/v1/messages");
  assert.equal(g.status, 405);
  assert.equal((await g.json()).type, "error");
  await waitIdle(srv.url);
});

test("platform: x-api-key or Bearer, 401 authentication_error, 402 billing_error, request-id, one ledger row per request", async () => {
  const { alice, poor } = keys;
  const c = new Anthropic({ baseURL: psrv.url, apiKey: alice.key, maxRetries: 0 });
  const params = { model: "tiny", max_tokens: 5, messages: [{ role: "user", content: "Hello" }] };
  const before = ledger(alice.id).length;
  const { data: m, response } = await c.messages.create(params).withResponse();
  assert.match(response.headers.get("request-id"), /^req-[0-9a-f]{32}$/);
  assert.equal(response.headers.get("x-request-id"), response.headers.get("request-id"));
  const s = await streamed(params, c);
  // the Authorization header (authToken) works the same
  const bearer = new Anthropic({ baseURL: psrv.url + "/anthropic", authToken: alice.key, apiKey: null, maxRetries: 0 });
  const b = await bearer.messages.create(params);
  // count_tokens authenticates but is not billed
  assert.equal((await c.messages.countTokens({ model: "tiny", messages: params.messages })).input_tokens, promptTokens(m));
  const rows = ledger(alice.id);
  assert.equal(rows.length, before + 3, JSON.stringify(rows));
  assert.ok(rows.every((r) => r.n === 1));
  // each row has the usage its message showed
  const seen = (x) => [promptTokens(x), x.usage.cache_read_input_tokens, x.usage.output_tokens].join("/");
  const row = (r) => [r.prompt, r.cached, r.completion].join("/");
  assert.deepEqual(rows.map(row).sort(), [...rows.slice(0, before).map(row), ...[m, s.final, b].map(seen)].sort());
  assert.equal(row(rows.find((r) => r.id === response.headers.get("request-id"))), seen(m));
  // a wrong key: 401 through the SDK's class, on messages and count_tokens
  const wrong = new Anthropic({ baseURL: psrv.url, apiKey: "sk-" + "0".repeat(48), maxRetries: 0 });
  await assert.rejects(wrong.messages.create(params),
    (e) => e instanceof Anthropic.AuthenticationError && e.status === 401 && e.error.error.type === "authentication_error");
  await assert.rejects(wrong.messages.countTokens({ model: "tiny", messages: params.messages }),
    (e) => e instanceof Anthropic.AuthenticationError);
  const none = await fetch(psrv.url + "/v1/messages", { method: "POST", body: JSON.stringify(params) });
  assert.equal(none.status, 401);
  assert.equal((await none.json()).error.type, "authentication_error");
  // no money left: 402 billing_error (the SDK's PaymentRequiredError)
  const broke = new Anthropic({ baseURL: psrv.url, apiKey: poor.key, maxRetries: 0 });
  await assert.rejects(broke.messages.create(params),
    (e) => e instanceof Anthropic.PaymentRequiredError && e.status === 402 && e.error.error.type === "billing_error");
  assert.equal(ledger(poor.id).length, 0);
  assert.equal(ledger(alice.id).length, before + 3);
  admin("verify");
});
