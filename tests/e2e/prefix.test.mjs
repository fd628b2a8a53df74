// Chat prefix continuation through the openai SDK: a top-level `prefix`
// (extra_body) and DeepSeek's form, a last assistant message with
// "prefix": true. The prompt must be exactly the model's own chat format
// with the generation prompt, followed by the prefix text (checked against
// the reference tokenizer's apply_chat_template), and the returned content
// is only the continuation (as DeepSeek's hosted API does).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startServer, makeModel } from "./lib/server.mjs";
import { referenceTokenizer } from "./lib/reftok.mjs";

const MODELS = { qwen: { pkg: "qwen2_5", arch: "qwen2" }, deepseek: { pkg: "deepseek_v3", arch: "llama" } };
const MSGS = [
  { role: "system", content: "You write Python." },
  { role: "user", content: "Write quick sort." },
];
const PREFIX = "```python\ndef quick_sort(arr):\n";

let srv, client;

before(async () => {
  const models = {};
  for (const [name, m] of Object.entries(MODELS)) {
    models[name] = makeModel(m.pkg, m.arch);
    m.tok = referenceTokenizer(m.pkg);
  }
  srv = await startServer({ models, args: ["--ctx", "1024"] });
  client = new OpenAI({ baseURL: srv.url + "/v1", apiKey: "none", maxRetries: 0 });
});

after(async () => {
  if (srv) assert.equal(await srv.stop(), 0, srv.log());
});

function expectedIds(m, msgs, prefix) {
  const text = m.tok.apply_chat_template(msgs, { tokenize: false, add_generation_prompt: true }) + prefix;
  return m.tok.encode(text, { add_special_tokens: false });
}

async function streamText(stream) {
  let text = "", finish = null;
  for await (const c of stream) {
    const ch = c.choices[0];
    if (!ch) continue;
    text += ch.delta.content || "";
    if (ch.finish_reason) finish = ch.finish_reason;
  }
  return { text, finish };
}

for (const [name, m] of Object.entries(MODELS)) {
  test(`${name}: top-level prefix — prompt is the chat format + prefix; content is the continuation only`, async () => {
    const args = { model: name, messages: MSGS, prefix: PREFIX, max_tokens: 12, seed: 5 };
    const r = await client.chat.completions.create({ ...args, return_token_ids: true });
    const want = expectedIds(m, MSGS, PREFIX);
    assert.deepEqual(r.choices[0].prompt_token_ids, want);
    assert.equal(r.usage.prompt_tokens, want.length);
    // The same ids as a raw completion prompt give the same text with the same
    // seed: the content holds only what the model wrote after the prefix.
    const raw = await client.completions.create({ model: name, prompt: want, max_tokens: 12, seed: 5 });
    assert.equal(r.choices[0].message.content, raw.choices[0].text);
    assert.ok(!r.choices[0].message.content.startsWith(PREFIX));
    const s = await streamText(await client.chat.completions.create({ ...args, stream: true }));
    assert.equal(s.text, r.choices[0].message.content);
    assert.equal(s.finish, r.choices[0].finish_reason);
  });

  test(`${name}: DeepSeek form (last assistant message with prefix: true) equals the top-level form`, async () => {
    const args = { model: name, messages: [...MSGS, { role: "assistant", content: PREFIX, prefix: true }], max_tokens: 12, seed: 5 };
    const r = await client.chat.completions.create({ ...args, return_token_ids: true });
    assert.deepEqual(r.choices[0].prompt_token_ids, expectedIds(m, MSGS, PREFIX));
    const top = await client.chat.completions.create({ model: name, messages: MSGS, prefix: PREFIX, max_tokens: 12, seed: 5 });
    assert.equal(r.choices[0].message.content, top.choices[0].message.content);
    const s = await streamText(await client.chat.completions.create({ ...args, stream: true }));
    assert.equal(s.text, r.choices[0].message.content);
  });

  test(`${name}: stop strings apply to the continuation, streaming and not`, async () => {
    const args = { model: name, messages: MSGS, prefix: PREFIX, max_tokens: 24, seed: 9 };
    const full = (await client.chat.completions.create(args)).choices[0].message.content;
    const cps = Array.from(full);
    if (cps.length < 8) return; // too short to cut (random weights)
    const stop = cps.slice(4, 7).join("");
    const want = full.slice(0, full.indexOf(stop));
    const r = await client.chat.completions.create({ ...args, stop: [stop] });
    assert.equal(r.choices[0].message.content, want);
    assert.equal(r.choices[0].finish_reason, "stop");
    const s = await streamText(await client.chat.completions.create({ ...args, stop: [stop], stream: true }));
    assert.equal(s.text, want);
  });
}

test("prefix validation", async () => {
  const bad = [
    [{ messages: [...MSGS, { role: "assistant", content: "x", prefix: true }], prefix: "y" }, "prefix"],
    [{ messages: [{ role: "assistant", content: "x", prefix: true }, ...MSGS] }, "messages[0].prefix"],
    [{ messages: [...MSGS, { role: "user", content: "x", prefix: true }] }, "messages[2].prefix"],
    [{ messages: [...MSGS, { role: "assistant", content: "x", prefix: "yes" }] }, "messages[2].prefix"],
    [{ messages: MSGS, prefix: 7 }, "prefix"],
  ];
  for (const [body, param] of bad) {
    const r = await fetch(srv.url + "/v1/chat/completions", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "qwen", max_tokens: 2, ...body }),
    });
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal((await r.json()).error.param, param, JSON.stringify(body));
  }
  // prefix: false is an ordinary assistant message
  const ok = await client.chat.completions.create({ model: "qwen", messages: [...MSGS, { role: "assistant", content: "x", prefix: false }, { role: "user", content: "more" }], max_tokens: 2 });
  assert.equal(ok.object, "chat.completion");
});
