// The Responses API (POST /v1/responses, stored responses) through the
// official openai SDK: client.responses.create / stream / retrieve / delete /
// inputItems.list against tiny random-weight models with real tokenizers and
// templates (the Qwen3 tokenizer of the default tiny model, Qwen2.5 for
// Hermes-style tool calls, and a ChatML template that opens <think> for
// reasoning items). A second server with --data checks tenant isolation and
// billing (one ledger row per request with the usage the response shows).
//
// Random weights: answers are greedy (temperature 0) where two paths must
// agree; tool calls and JSON come from the grammar (tool_choice required,
// text.format json_schema), not from the model's wits.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import OpenAI from "openai";
import Ajv2020 from "ajv/dist/2020.js";
import { BIN, startServer, tinyModel, makeModel, waitIdle } from "./lib/server.mjs";
import { adminCli } from "./lib/admin.mjs";

// ChatML whose generation prompt leaves <think> open, so the output starts
// in reasoning (thinking_budget closes it after a few tokens).
const THINK_TEMPLATE = `{%- for message in messages %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endfor %}{%- if add_generation_prompt %}<|im_start|>assistant
<think>
{% endif %}`;

const WEATHER = {
  type: "function",
  name: "get_weather",
  description: "Get the current weather in a city",
  parameters: {
    type: "object",
    properties: {
      city: { type: "string", enum: ["Paris", "Tokyo", "Lima"] },
      unit: { type: "string", enum: ["celsius", "fahrenheit"] },
    },
    required: ["city", "unit"],
    additionalProperties: false,
  },
};
const ASK = "What is the weather like in Paris today?";

let srv, client, dir, psrv;
const keys = {};


const { admin, newAccount } = adminCli(() => ["--data", dir]);
const account = (name) => ({ ...newAccount(name), client: null });

// One row per ledger entry: { id, n, prompt, completion }.
function ledger(acct) {
  const out = admin("usage", "--by", "request", "--format", "csv", "--account", String(acct));
  return out.trim().split("\n").slice(1).filter(Boolean).map((l) => {
    const c = l.split(",");
    return { id: c[0], n: Number(c[1]), prompt: Number(c[2]), completion: Number(c[4]) };
  });
}

before(async () => {
  const tmp = mkdtempSync(path.join(tmpdir(), "silica-resp-"));
  const tpl = path.join(tmp, "think.jinja");
  writeFileSync(tpl, THINK_TEMPLATE);
  const models = { tiny: tinyModel(), qwen: makeModel("qwen2_5"), think: makeModel("qwen3", "qwen2", tpl) };
  srv = await startServer({ models, args: ["--ctx", "1024"] });
  client = new OpenAI({ baseURL: srv.url + "/v1", apiKey: "none", maxRetries: 0 });

  dir = mkdtempSync(path.join(tmpdir(), "silica-resp-plat-"));
  keys.alice = account("alice");
  keys.bob = account("bob");
  admin("models", "set-price", "tiny", "--input", "100", "--output", "100");
  psrv = await startServer({ args: ["--data", dir, "--ctx", "512"] });
  for (const k of Object.values(keys))
    k.client = new OpenAI({ baseURL: psrv.url + "/v1", apiKey: k.key, maxRetries: 0 });
});

after(async () => {
  if (srv) assert.equal(await srv.stop(), 0, srv.log());
  if (psrv) assert.equal(await psrv.stop(), 0, psrv.log());
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// Collects a stream's events and its final response.
async function streamed(params, c = client) {
  const stream = c.responses.stream(params);
  const events = [];
  for await (const ev of stream) events.push(ev);
  return { events, final: await stream.finalResponse() };
}

function checkShape(r, params) {
  assert.match(r.id, /^resp_[0-9a-f]{48}$/);
  assert.equal(r.object, "response");
  assert.ok(Number.isInteger(r.created_at) && r.created_at > 1.6e9);
  assert.equal(r.model, params.model);
  assert.equal(r.error, null);
  assert.equal(typeof r.usage.input_tokens, "number");
  assert.equal(r.usage.total_tokens, r.usage.input_tokens + r.usage.output_tokens);
  assert.equal(typeof r.usage.input_tokens_details.cached_tokens, "number");
  assert.equal(typeof r.usage.output_tokens_details.reasoning_tokens, "number");
  // the request's fields echoed, OpenAI's defaults for the others
  assert.equal(r.instructions, params.instructions ?? null);
  assert.equal(r.max_output_tokens, params.max_output_tokens ?? null);
  assert.equal(r.temperature, params.temperature ?? 1);
  assert.equal(r.top_p, params.top_p ?? 1);
  assert.equal(r.parallel_tool_calls, params.parallel_tool_calls ?? true);
  assert.equal(r.previous_response_id, params.previous_response_id ?? null);
  assert.equal(r.store, params.store ?? true);
  assert.deepEqual(r.metadata, params.metadata ?? {});
  assert.deepEqual(r.text, params.text ?? { format: { type: "text" } });
  assert.ok(Array.isArray(r.tools));
  for (const it of r.output) {
    assert.ok(["message", "reasoning", "function_call"].includes(it.type), it.type);
    if (it.type === "message") {
      assert.match(it.id, /^msg_/);
      assert.equal(it.role, "assistant");
      assert.equal(it.content.length, 1);
      assert.equal(it.content[0].type, "output_text");
      assert.deepEqual(it.content[0].annotations, []);
    }
  }
}

// The message text of a response's output, as the SDK's output_text adds it up.
// An output item without its id and the SDK's own additions (parsed).
const itemText = (i) => i.type === "function_call" ? [i.type, i.name, i.arguments, i.status]
  : [i.type, i.status ?? null, ...(i.content ?? []).map((c) => c.text)];

const messageText = (r) => r.output.filter((i) => i.type === "message")
  .flatMap((i) => i.content).filter((c) => c.type === "output_text").map((c) => c.text).join("");

test("plain text: the response object, output_text, usage and the echo", async () => {
  const nl = { 198: -100, 271: -100 }; // (greedy, this tiny model writes newlines only)
  const params = { model: "tiny", input: "Hello there", max_output_tokens: 12, temperature: 0,
    metadata: { ticket: "42" }, top_p: 0.5, logit_bias: nl };
  const r = await client.responses.create(params);
  checkShape(r, params);
  assert.ok(["completed", "incomplete"].includes(r.status));
  assert.equal(typeof r.output_text, "string");
  assert.equal(r.output_text, messageText(r));
  assert.ok(r.usage.output_tokens > 0 && r.usage.output_tokens <= 12);
  // the same prompt as the chat route's, the same greedy answer
  const c = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "Hello there" }],
    max_tokens: 12, temperature: 0, top_p: 0.5, logit_bias: nl });
  assert.equal(r.usage.input_tokens, c.usage.prompt_tokens);
  assert.equal(r.usage.output_tokens, c.usage.completion_tokens);
  const chatText = (c.choices[0].message.reasoning_content ?? "") + (c.choices[0].message.content ?? "");
  const respText = r.output.map((i) => i.type === "reasoning" ? i.content[0].text : i.type === "message" ? i.content[0].text : "").join("");
  assert.equal(respText, chatText);
  assert.ok(respText.length > 0);
});

test("instructions are a system message first", async () => {
  const r = await client.responses.create({ model: "tiny", input: "Hello there", instructions: "Answer in French.",
    max_output_tokens: 6, temperature: 0 });
  const c = await client.chat.completions.create({ model: "tiny", max_tokens: 6, temperature: 0,
    messages: [{ role: "system", content: "Answer in French." }, { role: "user", content: "Hello there" }] });
  assert.equal(r.instructions, "Answer in French.");
  assert.equal(r.usage.input_tokens, c.usage.prompt_tokens);
  const plain = await client.responses.create({ model: "tiny", input: "Hello there", max_output_tokens: 1 });
  assert.ok(r.usage.input_tokens > plain.usage.input_tokens);
  // a developer message in the input is the same system message
  const d = await client.responses.create({ model: "tiny", max_output_tokens: 6, temperature: 0,
    input: [{ role: "developer", content: "Answer in French." }, { role: "user", content: [{ type: "input_text", text: "Hello there" }] }] });
  assert.equal(d.usage.input_tokens, r.usage.input_tokens);
  assert.equal(d.output_text, r.output_text);
});

test("max_output_tokens cuts: status incomplete, reason max_output_tokens", async () => {
  const r = await client.responses.create({ model: "qwen", input: "Write a long story.", max_output_tokens: 3 });
  assert.equal(r.status, "incomplete");
  assert.deepEqual(r.incomplete_details, { reason: "max_output_tokens" });
  assert.equal(r.usage.output_tokens, 3);
  const msg = r.output.find((i) => i.type === "message");
  assert.equal(msg.status, "incomplete");
  const s = await streamed({ model: "qwen", input: "Write a long story.", max_output_tokens: 3 });
  assert.equal(s.events.at(-1).type, "response.incomplete");
  assert.equal(s.final.status, "incomplete");
  assert.deepEqual(s.final.incomplete_details, { reason: "max_output_tokens" });
});

test("streaming: event order, sequence numbers, deltas add up to the final output_text", async () => {
  // (newlines banned: this tiny model's greedy answer is otherwise all "\n")
  const params = { model: "qwen", input: "Tell me about Paris.", max_output_tokens: 20, temperature: 0,
    logit_bias: { 198: -100, 271: -100 } };
  const { events, final } = await streamed(params);
  const types = events.map((e) => e.type);
  assert.deepEqual(types.slice(0, 5), ["response.created", "response.in_progress", "response.output_item.added",
    "response.content_part.added", "response.output_text.delta"]);
  assert.deepEqual(types.slice(-4), ["response.output_text.done", "response.content_part.done",
    "response.output_item.done", final.status === "completed" ? "response.completed" : "response.incomplete"]);
  events.forEach((e, i) => assert.equal(e.sequence_number, i, `event ${i} ${e.type}`));
  assert.equal(events[0].response.status, "in_progress");
  assert.deepEqual(events[0].response.output, []);
  const msgId = events[2].item.id;
  assert.match(msgId, /^msg_/);
  const deltas = events.filter((e) => e.type === "response.output_text.delta");
  for (const d of deltas) {
    assert.equal(d.item_id, msgId);
    assert.equal(d.output_index, 0);
    assert.equal(d.content_index, 0);
  }
  const joined = deltas.map((d) => d.delta).join("");
  assert.equal(joined, final.output_text);
  assert.equal(events.find((e) => e.type === "response.output_text.done").text, joined);
  checkShape(final, params);
  // the same as the non-streamed response (greedy)
  const r = await client.responses.create(params);
  assert.ok(final.output_text.length > 0);
  assert.equal(r.output_text, final.output_text);
  assert.equal(r.usage.input_tokens, final.usage.input_tokens);
  assert.equal(r.usage.output_tokens, final.usage.output_tokens);
  // the raw wire: "event:" lines name each data line's type
  const raw = await fetch(srv.url + "/v1/responses", { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...params, stream: true }) });
  assert.equal(raw.headers.get("content-type"), "text/event-stream");
  const blocks = (await raw.text()).trim().split("\n\n");
  for (const b of blocks) {
    const [ev, data] = b.split("\n");
    assert.equal(ev.slice(7), JSON.parse(data.slice(6)).type);
  }
  await waitIdle(srv.url);
});

test("reasoning: a reasoning item before the message, streamed as reasoning_text", async () => {
  // (newlines banned: the greedy reasoning is otherwise only "\n", which is trimmed away)
  const params = { model: "think", input: "Why is the sky blue?", max_output_tokens: 16, temperature: 0, thinking_budget: 4,
    logit_bias: { 198: -100 } };
  const r = await client.responses.create(params);
  assert.equal(r.output[0].type, "reasoning");
  assert.match(r.output[0].id, /^rs_/);
  assert.deepEqual(r.output[0].summary, []);
  assert.equal(r.output[0].content[0].type, "reasoning_text");
  assert.ok(r.output[0].content[0].text.length > 0);
  assert.equal(r.output[1].type, "message");
  assert.ok(r.usage.output_tokens_details.reasoning_tokens >= 4);
  assert.ok(!r.output_text.includes("think>"));
  const { events, final } = await streamed(params);
  const rs = events.filter((e) => e.type === "response.reasoning_text.delta").map((e) => e.delta).join("");
  assert.equal(rs, final.output[0].content[0].text);
  assert.deepEqual(final.output.map(itemText), r.output.map(itemText));
  // reasoning effort "none": thinking off (the template's own switch)
  const off = await client.responses.create({ model: "tiny", input: "Hi", max_output_tokens: 4, reasoning: { effort: "none" } });
  assert.ok(off.output.every((i) => i.type !== "reasoning"));
  assert.deepEqual(off.reasoning, { effort: "none", summary: null });
});

test("text.format json_schema: the output parses and validates", async () => {
  const schema = {
    type: "object",
    properties: { color: { type: "string", enum: ["red", "green", "blue"] }, n: { type: "integer", minimum: 1, maximum: 9 } },
    required: ["color", "n"],
    additionalProperties: false,
  };
  const validate = new Ajv2020({ strict: false }).compile(schema);
  const text = { format: { type: "json_schema", name: "pick", schema, strict: true } };
  let done = 0;
  for (const seed of [1, 2, 3]) {
    const r = await client.responses.create({ model: "qwen", input: "Pick a color.", text, max_output_tokens: 60, seed });
    assert.deepEqual(r.text, text);
    if (r.status !== "completed") continue;
    done++;
    const v = JSON.parse(r.output_text);
    assert.ok(validate(v), JSON.stringify(validate.errors));
  }
  assert.ok(done >= 2, `only ${done} of 3 finished`);
  const o = await client.responses.create({ model: "qwen", input: "JSON please", text: { format: { type: "json_object" } },
    max_output_tokens: 40, seed: 5, logit_bias: { 92: 5, 125: 5 } });
  if (o.status === "completed") assert.equal(typeof JSON.parse(o.output_text), "object");
});

test("function tools: required call, function_call_output round trip, same prompt as chat", async () => {
  const params = { model: "qwen", input: ASK, tools: [WEATHER], tool_choice: "required", parallel_tool_calls: false,
    max_output_tokens: 120, temperature: 0 };
  const r1 = await client.responses.create(params);
  checkShape(r1, params);
  assert.equal(r1.status, "completed");
  const calls = r1.output.filter((i) => i.type === "function_call");
  assert.equal(calls.length, 1, JSON.stringify(r1.output));
  const call = calls[0];
  assert.match(call.id, /^fc_/);
  assert.match(call.call_id, /^call_[A-Za-z0-9]{24}$/);
  assert.equal(call.name, "get_weather");
  assert.equal(call.status, "completed");
  const args = JSON.parse(call.arguments);
  assert.ok(["Paris", "Tokyo", "Lima"].includes(args.city) && ["celsius", "fahrenheit"].includes(args.unit));
  assert.deepEqual(r1.tools, [{ ...WEATHER, strict: true }]);
  assert.equal(r1.tool_choice, "required");
  assert.equal(r1.output_text, "");

  // the streamed call: argument deltas add up to the final arguments
  const s = await streamed(params);
  const fc = s.final.output.find((i) => i.type === "function_call");
  const pieces = s.events.filter((e) => e.type === "response.function_call_arguments.delta").map((e) => e.delta).join("");
  assert.equal(pieces, fc.arguments);
  assert.equal(fc.arguments, call.arguments);
  assert.equal(s.events.find((e) => e.type === "response.function_call_arguments.done").arguments, fc.arguments);

  // the result goes back as function_call_output; the model answers
  const result = '{"temperature": 21, "sky": "sunny"}';
  const input = [{ role: "user", content: ASK }, ...r1.output, { type: "function_call_output", call_id: call.call_id, output: result }];
  const r2 = await client.responses.create({ model: "qwen", input, tools: [WEATHER], max_output_tokens: 8, temperature: 0 });
  assert.ok(r2.output.some((i) => i.type === "message"));
  // the same prompt as the chat request with the call and the tool message
  const c = await client.chat.completions.create({ model: "qwen", max_tokens: 8, temperature: 0,
    tools: [{ type: "function", function: { name: WEATHER.name, description: WEATHER.description, parameters: WEATHER.parameters } }],
    messages: [{ role: "user", content: ASK },
      { role: "assistant", content: null, tool_calls: [{ id: call.call_id, type: "function", function: { name: call.name, arguments: call.arguments } }] },
      { role: "tool", tool_call_id: call.call_id, content: result }] });
  assert.equal(r2.usage.input_tokens, c.usage.prompt_tokens);
  assert.equal(r2.output_text, c.choices[0].message.content ?? "");

  // a named tool_choice
  const named = await client.responses.create({ ...params, tool_choice: { type: "function", name: "get_weather" } });
  assert.deepEqual(named.tool_choice, { type: "function", name: "get_weather" });
  assert.equal(named.output.filter((i) => i.type === "function_call").length, 1);
});

test("stored responses: retrieve, input_items, delete; store false keeps nothing", async () => {
  const input = [{ role: "user", content: "first" }, { role: "user", content: [{ type: "input_text", text: "second" }] }];
  const r = await client.responses.create({ model: "tiny", input, max_output_tokens: 4, metadata: { a: "b" } });
  const got = await client.responses.retrieve(r.id);
  assert.equal(got.id, r.id);
  assert.deepEqual(got.output, r.output);
  assert.deepEqual(got.usage, r.usage);
  assert.deepEqual(got.metadata, { a: "b" });
  assert.equal(got.output_text, r.output_text);
  const items = await client.responses.inputItems.list(r.id);
  // newest first by default, each with an id
  assert.deepEqual(items.data.map((i) => i.content[0].text), ["second", "first"]);
  for (const i of items.data) {
    assert.equal(i.type, "message");
    assert.equal(i.role, "user");
    assert.match(i.id, /^msg_/);
  }
  const asc = await client.responses.inputItems.list(r.id, { order: "asc", limit: 1 });
  assert.deepEqual(asc.data.map((i) => i.content[0].text), ["first"]);
  assert.equal(asc.has_more, true);
  const del = await fetch(`${srv.url}/v1/responses/${r.id}`, { method: "DELETE" });
  assert.equal(del.status, 200);
  assert.deepEqual(await del.json(), { id: r.id, object: "response", deleted: true });
  await assert.rejects(client.responses.retrieve(r.id), (e) => e.status === 404);
  await assert.rejects(client.responses.delete(r.id), (e) => e.status === 404);
  const nostore = await client.responses.create({ model: "tiny", input: "x", max_output_tokens: 2, store: false });
  assert.equal(nostore.store, false);
  await assert.rejects(client.responses.retrieve(nostore.id), (e) => e.status === 404);
  // a streamed response is stored as its final form
  const s = await streamed({ model: "tiny", input: "y", max_output_tokens: 3 });
  const gs = await client.responses.retrieve(s.final.id);
  assert.deepEqual(gs.output.map(itemText), s.final.output.map(itemText));
  assert.deepEqual(gs.output.map((i) => i.id), s.final.output.map((i) => i.id));
});

test("previous_response_id: the same prompt (and greedy answer) as sending the whole conversation", async () => {
  const p = { model: "qwen", max_output_tokens: 8, temperature: 0 };
  const r1 = await client.responses.create({ ...p, input: "Hello there", instructions: "Be kind." });
  const r2 = await client.responses.create({ ...p, previous_response_id: r1.id, input: "And then?" });
  assert.equal(r2.previous_response_id, r1.id);
  assert.equal(r2.instructions, null); // instructions do not carry over
  const whole = [{ role: "user", content: "Hello there" }, ...r1.output, { role: "user", content: "And then?" }];
  const r3 = await client.responses.create({ ...p, input: whole, store: false });
  assert.equal(r2.usage.input_tokens, r3.usage.input_tokens);
  assert.equal(r2.output_text, r3.output_text);
  // a chain of three: the second's conversation comes along
  const r4 = await client.responses.create({ ...p, previous_response_id: r2.id, input: "Last one." });
  const r5 = await client.responses.create({ ...p, store: false,
    input: [...whole, ...r2.output, { role: "user", content: "Last one." }] });
  assert.equal(r4.usage.input_tokens, r5.usage.input_tokens);
  assert.equal(r4.output_text, r5.output_text);
  // input_items of a continuation: every item used to generate it (the
  // earlier turns, their outputs, its own input), newest first
  const items = await client.responses.inputItems.list(r4.id, { order: "asc", limit: 100 });
  assert.deepEqual(items.data.map((i) => [i.role, i.content[0].text]), [["user", "Hello there"],
    ["assistant", r1.output_text], ["user", "And then?"], ["assistant", r2.output_text], ["user", "Last one."]]);
  assert.deepEqual(items.data.map((i) => i.id).slice(1, 2), [r1.output[0].id]);
  await assert.rejects(client.responses.create({ ...p, input: "x", previous_response_id: "resp_unknown" }),
    (e) => e.status === 404 && e.param === "previous_response_id" && e.code === "previous_response_not_found");
});

test("errors: OpenAI-shaped 400s naming the parameter, 404s", async () => {
  const bad = async (body, param, code, status = 400) => {
    const r = await fetch(srv.url + "/v1/responses", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", ...body }) });
    assert.equal(r.status, status, JSON.stringify(body));
    const e = (await r.json()).error;
    assert.equal(e.type, "invalid_request_error");
    assert.equal(e.param, param, JSON.stringify(e));
    if (code) assert.equal(e.code, code, JSON.stringify(e));
    assert.ok(e.message.length > 10);
  };
  await bad({ input: "x", bogus: 1 }, "bogus", "unknown_parameter");
  await bad({ input: "x", temperature: 5 }, "temperature");
  await bad({ input: "x", temperature: "hot" }, "temperature", "invalid_type");
  await bad({ input: "x", max_output_tokens: 0 }, "max_output_tokens");
  await bad({ input: "x", max_output_tokens: 100000 }, "max_output_tokens", "context_length_exceeded");
  await bad({}, "input", "missing_required_parameter");
  await bad({ input: [{ role: "user", content: [{ type: "input_image", image_url: "https://x/y.png" }] }] },
    "input[0].content[0]", "unsupported_content");
  await bad({ input: [{ type: "function_call_output", call_id: "c", output: [{ type: "input_file", file_id: "f" }] }] },
    "input[0].output[0]", "unsupported_content");
  await bad({ input: "x", tools: [{ type: "web_search" }] }, "tools[0].type", "unsupported_tool");
  await bad({ input: "x", tools: [{ type: "function", name: "bad name!" }] }, "tools[0].name");
  await bad({ input: "x", tool_choice: "required" }, "tool_choice");
  await bad({ input: "x", text: { format: { type: "json_schema", name: "s", schema: { type: "object", properties: { a: { type: "strnig" } } } } } },
    "text.format.schema");
  await bad({ input: "x", metadata: Object.fromEntries([...Array(17).keys()].map((i) => [`k${i}`, "v"])) }, "metadata");
  await bad({ input: "x", background: true }, "background");
  await bad({ input: "x", previous_response_id: "resp_nope" }, "previous_response_id", "previous_response_not_found", 404);
  await bad({ model: "nope", input: "x" }, "model", "model_not_found", 404);
  const r = await fetch(srv.url + "/v1/responses/resp_missing");
  assert.equal(r.status, 404);
  assert.equal((await r.json()).error.code, "response_not_found");
  assert.equal((await fetch(srv.url + "/v1/responses/resp_x/other")).status, 404);
  assert.equal((await fetch(srv.url + "/v1/responses", { method: "GET" })).status, 405);
  // through the SDK: its APIError carries status and param
  await assert.rejects(client.responses.create({ model: "tiny", input: "x", tools: [{ type: "file_search", vector_store_ids: ["v"] }] }),
    (e) => e.status === 400 && e.param === "tools[0].type");
  await waitIdle(srv.url);
});

test("platform: a response belongs to its account (others get 404); one ledger row per request", async () => {
  const { alice, bob } = keys;
  const before = ledger(alice.id).length;
  const r = await alice.client.responses.create({ model: "tiny", input: "Hello", max_output_tokens: 5 });
  const s = await streamed({ model: "tiny", input: "Hello", max_output_tokens: 4 }, alice.client);
  const rows = ledger(alice.id);
  assert.equal(rows.length, before + 2);
  const byUsage = (u) => rows.some((row) => row.prompt === u.input_tokens && row.completion === u.output_tokens);
  assert.ok(byUsage(r.usage), JSON.stringify({ rows, usage: r.usage }));
  assert.ok(byUsage(s.final.usage));
  // alice's own
  assert.equal((await alice.client.responses.retrieve(r.id)).id, r.id);
  const cont = await alice.client.responses.create({ model: "tiny", previous_response_id: r.id, input: "More", max_output_tokens: 2 });
  assert.ok(cont.usage.input_tokens > r.usage.input_tokens);
  // bob cannot see, continue, list or delete it
  await assert.rejects(bob.client.responses.retrieve(r.id), (e) => e.status === 404);
  await assert.rejects(bob.client.responses.inputItems.list(r.id), (e) => e.status === 404);
  await assert.rejects(bob.client.responses.create({ model: "tiny", previous_response_id: r.id, input: "x", max_output_tokens: 2 }),
    (e) => e.status === 404 && e.param === "previous_response_id");
  await assert.rejects(bob.client.responses.delete(r.id), (e) => e.status === 404);
  assert.equal((await alice.client.responses.retrieve(r.id)).id, r.id);
  // a refused request (404 previous id) costs nothing and leaves no row
  assert.equal(ledger(bob.id).length, 0);
  // no key: 401 on every route
  for (const [method, url] of [["GET", `/v1/responses/${r.id}`], ["DELETE", `/v1/responses/${r.id}`], ["POST", "/v1/responses"]]) {
    const res = await fetch(psrv.url + url, { method, headers: { "content-type": "application/json" },
      body: method === "POST" ? JSON.stringify({ model: "tiny", input: "x" }) : undefined });
    assert.equal(res.status, 401, `${method} ${url}`);
  }
  await alice.client.responses.delete(r.id);
  await assert.rejects(alice.client.responses.retrieve(r.id), (e) => e.status === 404);
  admin("verify");
});
