// Structured output through the openai SDK on a random-weight tiny model
// (Qwen3 tokenizer, 151k tokens): response_format json_object and
// json_schema on chat and completions, the `grammar` / `regex` extensions,
// n > 1, streaming, prefix continuation. Every output that finished with
// "stop" must parse and validate against its schema with an independent
// validator (ajv, draft 2020-12, with ajv-formats); bad or unsupported
// schemas must fail closed with a 400 naming the problem.
//
// Random weights know nothing of JSON: the grammar alone makes the output
// valid. To let structures close within max_tokens, requests give the
// closing tokens (`"`, `}`, `]`) a logit_bias — the mask is applied before
// the bias, so the bias can never make a forbidden token possible.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { startServer, waitIdle } from "./lib/server.mjs";
import { referenceTokenizer } from "./lib/reftok.mjs";

let srv, client, BIAS;
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);

before(async () => {
  srv = await startServer({ args: ["--ctx", "1024", "--max-running", "16"] });
  client = new OpenAI({ baseURL: srv.url + "/v1", apiKey: "none", maxRetries: 0 });
  const tok = referenceTokenizer("qwen3");
  BIAS = {};
  for (const s of ['"', "}", "]", '"}', '"]', "}}", "}]", "]}", '"}}']) {
    const ids = tok.encode(s, { add_special_tokens: false });
    if (ids.length === 1) BIAS[ids[0]] = 10;
  }
});

after(async () => {
  if (srv) assert.equal(await srv.stop(), 0, srv.log());
});

// ---------------------------------------------------------------- schemas

const HAND = [
  { type: "object", properties: { name: { type: "string", maxLength: 10 }, age: { type: "integer", minimum: 0, maximum: 120 } }, required: ["name", "age"], additionalProperties: false },
  { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"] },
  { type: "object", properties: { color: { enum: ["red", "green", "blue"] } }, required: ["color"] },
  { type: "object", properties: { v: { const: "fixed" }, n: { const: 42 } }, required: ["v", "n"] },
  { type: "object", properties: { tags: { type: "array", items: { type: "string", maxLength: 6 }, minItems: 1, maxItems: 3 } }, required: ["tags"] },
  { type: "object", properties: { p: { type: "string", pattern: "^[A-Z]{2}-[0-9]{3}$" } }, required: ["p"] },
  { type: "object", properties: { d: { type: "string", format: "date" } }, required: ["d"] },
  { type: "object", properties: { t: { type: "string", format: "date-time" } }, required: ["t"] },
  { type: "object", properties: { u: { type: "string", format: "uuid" } }, required: ["u"] },
  { type: "object", properties: { e: { type: "string", format: "email" } }, required: ["e"] },
  { type: "object", properties: { tm: { type: "string", format: "time" } }, required: ["tm"] },
  { type: "object", properties: { x: { type: "number", minimum: -1.5, maximum: 2.25 } }, required: ["x"] },
  { type: "object", properties: { x: { type: "number", exclusiveMinimum: 0, exclusiveMaximum: 1 } }, required: ["x"] },
  { type: "object", properties: { i: { type: "integer", minimum: -20, maximum: -3 } }, required: ["i"] },
  { type: "object", properties: { i: { type: "integer", minimum: 1000, maximum: 1015 } }, required: ["i"] },
  { type: "object", properties: { i: { type: "integer", exclusiveMinimum: 5, exclusiveMaximum: 9 } }, required: ["i"] },
  { type: "object", properties: { v: { anyOf: [{ type: "integer", minimum: 0, maximum: 9 }, { type: "string", maxLength: 3 }] } }, required: ["v"] },
  { type: "object", properties: { v: { oneOf: [{ type: "boolean" }, { type: "null" }] } }, required: ["v"] },
  { type: "object", properties: { v: { type: ["string", "null"], maxLength: 4 } }, required: ["v"] },
  { type: "object", properties: { v: { type: "integer", nullable: true, minimum: 0, maximum: 5 } }, required: ["v"] },
  { type: "array", items: { type: "integer", minimum: 0, maximum: 99 }, minItems: 2, maxItems: 4 },
  { type: "array", prefixItems: [{ type: "string", maxLength: 3 }, { type: "integer", minimum: 0, maximum: 9 }], items: false },
  { type: "string", enum: ["alpha", "beta", "gamma"] },
  { type: "integer", minimum: 0, maximum: 1000 },
  { type: "boolean" },
  { type: "null" },
  { enum: [1, "two", null, true, 3.5] },
  { type: "object", properties: { a: { type: "object", properties: { b: { type: "object", properties: { c: { type: "integer", minimum: 0, maximum: 3 } }, required: ["c"] } }, required: ["b"] } }, required: ["a"] },
  { $defs: { pt: { type: "object", properties: { x: { type: "integer", minimum: 0, maximum: 9 }, y: { type: "integer", minimum: 0, maximum: 9 } }, required: ["x", "y"], additionalProperties: false } },
    type: "object", properties: { from: { $ref: "#/$defs/pt" }, to: { $ref: "#/$defs/pt" } }, required: ["from", "to"] },
  { definitions: { id: { type: "string", pattern: "^id[0-9]{2}$" } }, type: "array", items: { $ref: "#/definitions/id" }, maxItems: 3 },
  // recursive: a tree whose children are trees
  { $defs: { node: { type: "object", properties: { v: { type: "integer", minimum: 0, maximum: 9 }, kids: { type: "array", items: { $ref: "#/$defs/node" }, maxItems: 2 } }, required: ["v"], additionalProperties: false } },
    $ref: "#/$defs/node" },
  // recursive linked list
  { $defs: { list: { anyOf: [{ type: "null" }, { type: "object", properties: { head: { type: "integer", minimum: 0, maximum: 9 }, tail: { $ref: "#/$defs/list" } }, required: ["head", "tail"], additionalProperties: false }] } },
    $ref: "#/$defs/list" },
  { allOf: [{ type: "object", properties: { a: { type: "integer", minimum: 0, maximum: 3 } }, required: ["a"] }, { type: "object", properties: { b: { type: "boolean" } }, required: ["b"] }] },
  { type: "object", properties: { s: { type: "string", minLength: 2, maxLength: 4 } }, required: ["s"], additionalProperties: false },
  { type: "object", additionalProperties: { type: "integer", minimum: 0, maximum: 9 }, maxProperties: undefined },
  { type: "object", properties: { k: { type: "string", maxLength: 3 } }, additionalProperties: true },
  { type: "object", properties: { m: { type: "array", items: { type: "array", items: { type: "integer", minimum: 0, maximum: 1 }, maxItems: 2 }, maxItems: 2 } }, required: ["m"] },
  { type: "object", properties: { code: { type: "string", pattern: "^(GET|POST|PUT)$" }, path: { type: "string", pattern: "^/[a-z]{1,8}(/[a-z]{1,8}){0,2}$" } }, required: ["code", "path"] },
  { type: "object", properties: { hex: { type: "string", pattern: "^#[0-9a-fA-F]{6}$" } }, required: ["hex"] },
  { type: "object", properties: { q: { type: "string", pattern: "[0-9]{3}" } }, required: ["q"] },
  { type: "object", properties: { title: { type: "string", description: "a title", maxLength: 8 }, n: { type: "integer", title: "N", default: 3, minimum: 1, maximum: 3 } }, required: ["title", "n"], description: "annotations are ignored" },
  { type: "object", properties: { opt1: { type: "integer", minimum: 0, maximum: 9 }, opt2: { type: "boolean" }, req: { type: "string", maxLength: 3 } }, required: ["req"] },
  { type: "object", properties: { big: { type: "integer", minimum: -1000000, maximum: 1000000 } }, required: ["big"] },
  { type: "object", properties: { f: { type: "number" } }, required: ["f"] },
  { type: "object", properties: { s: { type: "string" } }, required: ["s"] },
];

// Random schemas from a seeded generator: nested objects and arrays with
// bounds, enums, consts, patterns, formats, unions.
function rng(seed) {
  let x = seed >>> 0;
  return () => { x = (x * 1664525 + 1013904223) >>> 0; return x / 4294967296; };
}
function genSchema(r, depth) {
  const pick = (a) => a[Math.floor(r() * a.length)];
  const leaf = () => pick([
    () => ({ type: "string", maxLength: 1 + Math.floor(r() * 8) }),
    () => ({ type: "string", minLength: 1, maxLength: 5 }),
    () => ({ type: "string", enum: ["a", "bb", "ccc", "dd d"].slice(0, 2 + Math.floor(r() * 3)) }),
    () => ({ type: "string", pattern: pick(["^[a-z]{2,5}$", "^[0-9]{4}-[0-9]{2}$", "^(yes|no|maybe)$", "^[A-Z][a-z]{0,6}$", "^\\d{1,3}(\\.\\d{1,2})?$"]) }),
    () => ({ type: "string", format: pick(["date", "date-time", "uuid", "email", "time"]) }),
    () => { const lo = Math.floor(r() * 200) - 100; return { type: "integer", minimum: lo, maximum: lo + Math.floor(r() * 50) }; },
    () => { const lo = Math.round((r() * 20 - 10) * 4) / 4; return { type: "number", minimum: lo, maximum: lo + 1 + Math.floor(r() * 5) }; },
    () => ({ type: "boolean" }),
    () => ({ type: "null" }),
    () => ({ const: pick(["k", 7, false]) }),
    () => ({ enum: [1, 2.5, "x", null] }),
    () => ({ type: ["integer", "null"], minimum: 0, maximum: 9 }),
  ])();
  if (depth <= 0) return leaf();
  const k = r();
  if (k < 0.35) return leaf();
  if (k < 0.7) {
    const n = 1 + Math.floor(r() * 4);
    const properties = {};
    const names = ["id", "name", "value", "items", "meta", "kind", "count", "ok"];
    for (let i = 0; i < n; i++) properties[names[(i * 3 + Math.floor(r() * 8)) % names.length] + i] = genSchema(r, depth - 1);
    const keys = Object.keys(properties);
    return { type: "object", properties, required: keys.filter(() => r() < 0.7), additionalProperties: false };
  }
  if (k < 0.9) {
    const lo = Math.floor(r() * 2);
    return { type: "array", items: genSchema(r, depth - 1), minItems: lo, maxItems: lo + Math.floor(r() * 3) };
  }
  return { anyOf: [genSchema(r, depth - 1), genSchema(r, depth - 1)] };
}

const SCHEMAS = [...HAND];
{
  const r = rng(12345);
  while (SCHEMAS.length < 120) SCHEMAS.push(genSchema(r, 3));
}

// ------------------------------------------------------------- helpers

function schemaReq(i, schema, extra = {}) {
  const chat = i % 2 === 0;
  const base = {
    model: "tiny", max_tokens: 200, seed: 1000 + i, logit_bias: BIAS,
    response_format: { type: "json_schema", json_schema: { name: `s${i}`, schema, strict: true } },
    ...extra,
  };
  return chat ? { chat, args: { ...base, messages: [{ role: "user", content: "Give JSON." }] } }
    : { chat, args: { ...base, prompt: "JSON:" } };
}

async function run(chat, args) {
  if (args.stream) {
    const stream = chat ? await client.chat.completions.create(args) : await client.completions.create(args);
    const out = [];
    for await (const c of stream) {
      for (const ch of c.choices) {
        out[ch.index] ??= { text: "", finish: null };
        out[ch.index].text += (chat ? ch.delta?.content : ch.text) || "";
        if (ch.finish_reason) out[ch.index].finish = ch.finish_reason;
      }
    }
    return out;
  }
  const r = chat ? await client.chat.completions.create(args) : await client.completions.create(args);
  return r.choices.map((c) => ({ text: chat ? c.message.content : c.text, finish: c.finish_reason }));
}

async function pool(items, width, fn) {
  const res = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) {
      const i = next++;
      res[i] = await fn(items[i], i);
    }
  }));
  return res;
}

function checkValid(schema, text, label) {
  let v;
  try { v = JSON.parse(text); } catch (e) { assert.fail(`${label}: output does not parse: ${JSON.stringify(text)} (${e.message})`); }
  const validate = ajv.compile(schema);
  assert.ok(validate(v), `${label}: ${JSON.stringify(text)} does not validate against ${JSON.stringify(schema)}: ${ajv.errorsText(validate.errors)}`);
}

// ---------------------------------------------------------------- tests

test("json_schema: 120 schemas (nested, recursive, enums, patterns, formats, bounds, anyOf, $ref), every completed output validates", async (t) => {
  assert.ok(SCHEMAS.length >= 100);
  let stop = 0, total = 0;
  const t0 = Date.now();
  await pool(SCHEMAS.map((s, i) => [s, i]), 12, async ([schema, i]) => {
    const { chat, args } = schemaReq(i, schema, i % 5 === 1 ? { stream: true } : {});
    const out = await run(chat, args);
    for (const o of out) {
      total++;
      assert.ok(o.finish === "stop" || o.finish === "length", `schema ${i}: finish ${o.finish}`);
      if (o.finish !== "stop") continue;
      stop++;
      checkValid(schema, o.text, `schema ${i}`);
    }
  });
  t.diagnostic(`stop ratio ${stop}/${total} in ${Date.now() - t0} ms`);
  assert.ok(stop >= 0.85 * total, `only ${stop} of ${total} outputs completed`);
});

test("json_object: outputs always parse as JSON objects (chat and completions, n=3, streaming too)", async (t) => {
  let stop = 0, total = 0;
  const jobs = Array.from({ length: 16 }, (_, i) => i);
  await pool(jobs, 8, async (i) => {
    const chat = i % 2 === 0;
    const args = { model: "tiny", max_tokens: 160, seed: 50 + i, n: 3, logit_bias: BIAS, stream: i % 4 < 2,
      response_format: { type: "json_object" }, ...(chat ? { messages: [{ role: "user", content: "JSON please" }] } : { prompt: "{" }) };
    for (const o of await run(chat, args)) {
      total++;
      if (o.finish !== "stop") continue;
      stop++;
      const v = JSON.parse(o.text);
      assert.equal(typeof v, "object");
      assert.ok(v !== null && !Array.isArray(v), o.text);
    }
  });
  t.diagnostic(`json_object stop ratio ${stop}/${total}`);
  assert.ok(stop >= 0.8 * total, `only ${stop} of ${total} completed`);
});

test("n>1: each choice has its own matcher; streaming equals non-streaming for the same seed", async () => {
  const schema = { type: "object", properties: { id: { type: "integer", minimum: 0, maximum: 999 }, tag: { enum: ["a", "b", "c"] }, note: { type: "string", maxLength: 6 } }, required: ["id", "tag", "note"], additionalProperties: false };
  for (const chat of [true, false]) {
    const { args } = schemaReq(chat ? 0 : 1, schema, { n: 4, seed: 77, temperature: 1 });
    const a = await run(chat, args);
    const b = await run(chat, { ...args, stream: true });
    assert.equal(a.length, 4);
    assert.deepEqual(b, a, "stream == non-stream");
    for (const o of a) if (o.finish === "stop") checkValid(schema, o.text, "n>1");
    assert.ok(new Set(a.map((o) => o.text)).size > 1, "choices differ: " + JSON.stringify(a));
  }
  // json_object and a regex, streamed vs not
  for (const extra of [{ response_format: { type: "json_object" } }, { regex: "[a-z]{3,6}@[0-9]{2}" }]) {
    const args = { model: "tiny", prompt: "x", max_tokens: 80, seed: 9, n: 2, logit_bias: BIAS, ...extra };
    assert.deepEqual(await run(false, { ...args, stream: true }), await run(false, args));
  }
});

test("grammar and regex extensions: the grammar's end stops generation", async () => {
  const r1 = await client.completions.create({ model: "tiny", prompt: "Answer:", max_tokens: 50, seed: 3, grammar: 'root ::= "yes" | "no"' });
  assert.ok(["yes", "no"].includes(r1.choices[0].text), r1.choices[0].text);
  assert.equal(r1.choices[0].finish_reason, "stop");
  assert.ok(r1.usage.completion_tokens <= 3, `stopped at the grammar's end: ${r1.usage.completion_tokens} tokens`);
  const r2 = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "phone?" }], max_tokens: 60, seed: 4, n: 3, regex: "\\+1-[0-9]{3}-[0-9]{4}" });
  for (const c of r2.choices) {
    assert.match(c.message.content, /^\+1-[0-9]{3}-[0-9]{4}$/);
    assert.equal(c.finish_reason, "stop");
  }
  const gbnf = 'root ::= item ("," item){0,3}\nitem ::= [a-c]{1,3}';
  const r3 = await client.completions.create({ model: "tiny", prompt: "list:", max_tokens: 40, seed: 5, grammar: gbnf, stream: false });
  assert.match(r3.choices[0].text, /^[a-c]{1,3}(,[a-c]{1,3}){0,3}$/);
  // vLLM's spellings
  const r4 = await client.completions.create({ model: "tiny", prompt: "n:", max_tokens: 10, seed: 6, guided_regex: "[0-9]{2}" });
  assert.match(r4.choices[0].text, /^[0-9]{2}$/);
  const r5 = await client.completions.create({ model: "tiny", prompt: "n:", max_tokens: 40, seed: 6, logit_bias: BIAS, guided_json: { type: "object", properties: { a: { type: "boolean" } }, required: ["a"], additionalProperties: false } });
  assert.ok(typeof JSON.parse(r5.choices[0].text).a === "boolean");
});

test("max_tokens cut: finish_reason length (the JSON may be incomplete)", async () => {
  const schema = { type: "object", properties: { long: { type: "string", minLength: 40, maxLength: 60 } }, required: ["long"] };
  for (const stream of [false, true]) {
    const out = await run(true, { model: "tiny", messages: [{ role: "user", content: "x" }], max_tokens: 5, seed: 2, stream,
      response_format: { type: "json_schema", json_schema: { name: "cut", schema } } });
    assert.equal(out[0].finish, "length");
    assert.ok(out[0].text.startsWith('{'), out[0].text);
    assert.throws(() => JSON.parse(out[0].text));
  }
});

test("logit_bias cannot revive a token the grammar forbids", async () => {
  const tok = referenceTokenizer("qwen3");
  const bias = {};
  for (const w of ["hello", " world", "abc", "<"]) {
    const ids = tok.encode(w, { add_special_tokens: false });
    if (ids.length === 1) bias[ids[0]] = 100;
  }
  const r = await client.completions.create({ model: "tiny", prompt: "x", max_tokens: 20, seed: 1, logit_bias: bias, regex: "[0-9]{1,5}" });
  assert.match(r.choices[0].text, /^[0-9]{1,5}$/);
});

test("prefix continuation + JSON mode: the grammar starts after the prefix", async () => {
  const schema = { type: "object", properties: { name: { type: "string", maxLength: 8 }, age: { type: "integer", minimum: 0, maximum: 99 } }, required: ["name", "age"], additionalProperties: false };
  const prefix = '{"name": "';
  for (const form of ["top", "message"]) {
    for (const stream of [false, true]) {
      const msgs = [{ role: "user", content: "Who?" }];
      const args = form === "top"
        ? { model: "tiny", messages: msgs, prefix, max_tokens: 60, seed: 11, logit_bias: BIAS, stream }
        : { model: "tiny", messages: [...msgs, { role: "assistant", content: prefix, prefix: true }], max_tokens: 60, seed: 11, logit_bias: BIAS, stream };
      const out = await run(true, { ...args, response_format: { type: "json_schema", json_schema: { name: "p", schema } } });
      assert.ok(!out[0].text.startsWith(prefix), "content is the continuation only");
      if (out[0].finish === "stop") checkValid(schema, prefix + out[0].text, `prefix ${form}`);
      const o2 = await run(true, { ...args, response_format: { type: "json_object" } });
      if (o2[0].finish === "stop") assert.equal(typeof JSON.parse(prefix + o2[0].text), "object");
    }
  }
  // a prefix the grammar cannot continue: 400 before any output
  await assert.rejects(client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], prefix: "hello",
    max_tokens: 5, response_format: { type: "json_object" } }), (e) => e.status === 400 && /prefix/.test(e.message));
});

test("fail closed: unsupported keywords and bad schemas are 400s naming the problem (also when streaming)", async () => {
  const bad = [
    [{ type: "object", not: { type: "null" } }, /'not'/],
    [{ type: "object", patternProperties: { "^a": { type: "integer" } } }, /patternProperties/],
    [{ type: "object", properties: { a: { type: "integer" } }, if: { required: ["a"] }, then: { required: ["b"] } }, /'if'|'then'/],
    [{ type: "array", items: { type: "integer" }, uniqueItems: true }, /uniqueItems/],
    [{ type: "array", contains: { type: "integer" } }, /contains/],
    [{ type: "integer", multipleOf: 3 }, /multipleOf/],
    [{ type: "object", propertyNames: { pattern: "^a" } }, /propertyNames/],
    [{ type: "object", dependentRequired: { a: ["b"] } }, /dependentRequired/],
    [{ type: "string", pattern: "(?=a)b" }, /pattern|lookahead|lookaround/i],
    [{ type: "string", pattern: "(a" }, /pattern|parenthes|missing/i],
    [{ $ref: "#/$defs/missing" }, /missing|\$ref/],
    [{ type: "strange" }, /strange|type/],
    [{ $defs: { a: { $ref: "#/$defs/a" } }, $ref: "#/$defs/a" }, /recurs|left|cycle/i],
  ];
  for (const [i, [schema, re]] of bad.entries()) {
    for (const stream of [false, true]) {
      const args = { model: "tiny", messages: [{ role: "user", content: "x" }], max_tokens: 5, stream,
        response_format: { type: "json_schema", json_schema: { name: "bad", schema } } };
      await assert.rejects(client.chat.completions.create(args), (e) => {
        assert.equal(e.status, 400, `schema ${i}: ${e.message}`);
        assert.match(e.message, re, `schema ${i}`);
        assert.equal(e.param, "response_format.json_schema.schema");
        return true;
      });
    }
  }
  const shapes = [
    [{ response_format: { type: "xml" } }, "response_format.type"],
    [{ response_format: "json" }, "response_format"],
    [{ response_format: { type: "json_schema" } }, "response_format.json_schema"],
    [{ response_format: { type: "json_schema", json_schema: { schema: {} } } }, "response_format.json_schema.name"],
    [{ response_format: { type: "json_schema", json_schema: { name: "bad name!", schema: {} } } }, "response_format.json_schema.name"],
    [{ response_format: { type: "json_schema", json_schema: { name: "x", schema: [1] } } }, "response_format.json_schema.schema"],
    [{ response_format: { type: "json_schema", json_schema: { name: "x", schema: {}, strict: "yes" } } }, "response_format.json_schema.strict"],
    [{ grammar: 'root ::= "a' }, "grammar"],
    [{ grammar: "root ::= undefined-rule" }, "grammar"],
    [{ grammar: "" }, "grammar"],
    [{ regex: "(a|b" }, "regex"],
    [{ regex: "a(?!b)" }, "regex"],
    [{ regex: "[0-9]+", grammar: 'root ::= "a"' }, "regex"],
    [{ response_format: { type: "json_object" }, regex: "a" }, "regex"],
  ];
  for (const [extra, param] of shapes) {
    for (const chat of [true, false]) {
      const args = { model: "tiny", max_tokens: 5, ...extra, ...(chat ? { messages: [{ role: "user", content: "x" }] } : { prompt: "x" }) };
      await assert.rejects(chat ? client.chat.completions.create(args) : client.completions.create(args), (e) => {
        assert.equal(e.status, 400, JSON.stringify(extra) + ": " + e.message);
        assert.equal(e.param, param, JSON.stringify(extra) + ": " + e.message);
        return true;
      });
    }
  }
  // response_format text is no constraint
  const r = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], max_tokens: 3, response_format: { type: "text" } });
  assert.equal(r.choices.length, 1);
  await waitIdle(srv.url);
});

test("a client that leaves while its grammar is being prepared costs nothing and leaks nothing", async () => {
  const schema = { type: "object", properties: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`p${i}`, { type: "string", maxLength: 20 + i }])) };
  const ac = new AbortController();
  const p = client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], max_tokens: 50,
    response_format: { type: "json_schema", json_schema: { name: "leave", schema } } }, { signal: ac.signal });
  setTimeout(() => ac.abort(), 2);
  await assert.rejects(p);
  await waitIdle(srv.url);
});
