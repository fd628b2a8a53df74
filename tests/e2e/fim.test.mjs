// Fill-in-the-middle through the openai SDK on tiny random-weight models
// with real tokenizers: Qwen2.5-Coder-style FIM tokens (<|fim_prefix|> ...,
// the qwen2_5 tokenizer) and DeepSeek-Coder-style ones (<｜fim▁begin｜> ...,
// the deepseek_v3 tokenizer); a Llama 3.1 tokenizer has none.
// The exact ids sent to the model are checked against the family's layout
// built with the reference tokenizer (return_token_ids gives them back).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startServer, makeModel, waitIdle } from "./lib/server.mjs";
import { referenceTokenizer, tokenId, addedBos } from "./lib/reftok.mjs";

const FAMILIES = {
  qwen: { pkg: "qwen2_5", arch: "qwen2", pre: "<|fim_prefix|>", suf: "<|fim_suffix|>", mid: "<|fim_middle|>", eog: "<|endoftext|>" },
  deepseek: { pkg: "deepseek_v3", arch: "llama", pre: "<｜fim▁begin｜>", suf: "<｜fim▁hole｜>", mid: "<｜fim▁end｜>", eog: "<｜end▁of▁sentence｜>" },
};

// The quick-sort example: write the middle of the function.
const PREFIX = "def quick_sort(arr):\n    if len(arr) <= 1:\n        return arr\n    pivot = arr[0]\n";
const SUFFIX = "\n    return quick_sort(left) + [pivot] + quick_sort(right)\n";

let srv, client;

before(async () => {
  const models = { nofim: makeModel("llama3_1", "llama") };
  for (const [name, f] of Object.entries(FAMILIES)) {
    models[name] = makeModel(f.pkg, f.arch);
    f.tok = referenceTokenizer(f.pkg);
    f.ids = { pre: tokenId(f.tok, f.pre), suf: tokenId(f.tok, f.suf), mid: tokenId(f.tok, f.mid), eog: tokenId(f.tok, f.eog) };
    f.bos = addedBos(f.pkg, f.tok);
  }
  srv = await startServer({ models, args: ["--ctx", "1024"] });
  client = new OpenAI({ baseURL: srv.url + "/v1", apiKey: "none", maxRetries: 0 });
});

after(async () => {
  if (srv) assert.equal(await srv.stop(), 0, srv.log());
});

function layout(f, prefix, suffix, spm = false) {
  const enc = (t) => f.tok.encode(t, { add_special_tokens: false });
  const head = f.bos === null ? [] : [f.bos];
  return spm
    ? [...head, f.ids.suf, ...enc(suffix), f.ids.pre, ...enc(prefix), f.ids.mid]
    : [...head, f.ids.pre, ...enc(prefix), f.ids.suf, ...enc(suffix), f.ids.mid];
}

async function streamText(stream, chat) {
  let text = "", finish = null;
  for await (const c of stream) {
    const ch = c.choices[0];
    if (!ch) continue;
    text += (chat ? ch.delta.content : ch.text) || "";
    if (ch.finish_reason) finish = ch.finish_reason;
  }
  return { text, finish };
}

test("GET /v1/models marks FIM and tools support", async () => {
  const list = await client.models.list();
  const caps = Object.fromEntries(list.data.map((m) => [m.id, m.capabilities]));
  assert.equal(caps.qwen.fim, true);
  assert.equal(caps.deepseek.fim, true);
  assert.equal(caps.nofim.fim, false);
  assert.equal(caps.qwen.tools, true, "Qwen2.5's template renders tools");
  for (const c of Object.values(caps)) {
    assert.equal(c.chat, true);
    assert.equal(c.completion, true);
    assert.equal(typeof c.tools, "boolean");
  }
  assert.equal((await client.models.retrieve("nofim")).capabilities.fim, false);
});

for (const [name, f] of Object.entries(FAMILIES)) {
  test(`${name}: quick-sort FIM on /v1/completions, the family's exact layout, streaming and not`, async () => {
    const args = { model: name, prompt: PREFIX, suffix: SUFFIX, max_tokens: 16, seed: 3 };
    const r = await client.completions.create({ ...args, return_token_ids: true });
    const want = layout(f, PREFIX, SUFFIX);
    assert.deepEqual(r.choices[0].prompt_token_ids, want);
    assert.equal(r.usage.prompt_tokens, want.length);
    assert.equal(typeof r.choices[0].text, "string");
    assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
    for (const m of [f.pre, f.suf, f.mid]) assert.ok(!r.choices[0].text.includes(m));
    // the completion is the middle only: the suffix and prefix are not echoed
    assert.ok(!r.choices[0].text.startsWith(PREFIX));
    const s = await streamText(await client.completions.create({ ...args, stream: true }), false);
    assert.equal(s.text, r.choices[0].text);
    assert.equal(s.finish, r.choices[0].finish_reason);
    // return_token_ids in a stream: prompt ids once, then each chunk's new ids
    let pids = null, tids = [];
    for await (const c of await client.completions.create({ ...args, stream: true, return_token_ids: true })) {
      const ch = c.choices[0];
      if (!ch) continue;
      if (ch.prompt_token_ids) { assert.equal(pids, null); pids = ch.prompt_token_ids; }
      tids.push(...ch.token_ids);
    }
    assert.deepEqual(pids, want);
    assert.deepEqual(tids, r.choices[0].token_ids);
  });

  test(`${name}: chat with prefix + suffix is the same FIM request`, async () => {
    const args = { model: name, messages: [{ role: "user", content: "not used" }], prefix: PREFIX, suffix: SUFFIX, max_tokens: 16, seed: 3 };
    const c = await client.chat.completions.create({ ...args, return_token_ids: true });
    assert.deepEqual(c.choices[0].prompt_token_ids, layout(f, PREFIX, SUFFIX));
    const r = await client.completions.create({ model: name, prompt: PREFIX, suffix: SUFFIX, max_tokens: 16, seed: 3 });
    assert.equal(c.choices[0].message.content, r.choices[0].text);
    const s = await streamText(await client.chat.completions.create({ ...args, stream: true }), true);
    assert.equal(s.text, c.choices[0].message.content);
    // messages may be left out entirely
    const bare = await fetch(srv.url + "/v1/chat/completions", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: name, prefix: PREFIX, suffix: SUFFIX, max_tokens: 16, seed: 3 }),
    });
    assert.equal(bare.status, 200);
    assert.equal((await bare.json()).choices[0].message.content, c.choices[0].message.content);
  });

  test(`${name}: fim_order spm puts the suffix first; token-id prompts are prefixes`, async () => {
    const r = await client.completions.create({ model: name, prompt: "a = 1\n", suffix: "print(b)\n", max_tokens: 2, fim_order: "spm", return_token_ids: true });
    assert.deepEqual(r.choices[0].prompt_token_ids, layout(f, "a = 1\n", "print(b)\n", true));
    const ids = f.tok.encode("x = ", { add_special_tokens: false });
    const t = await client.completions.create({ model: name, prompt: ids, suffix: "", max_tokens: 2, return_token_ids: true });
    assert.deepEqual(t.choices[0].prompt_token_ids, layout(f, "x = ", ""));
  });

  test(`${name}: generation ends at end-of-generation and FIM marker tokens`, async () => {
    for (const id of [f.ids.eog, f.ids.mid, f.ids.pre, f.ids.suf]) {
      const r = await client.completions.create({ model: name, prompt: PREFIX, suffix: SUFFIX, max_tokens: 8, logit_bias: { [id]: 100 } });
      assert.equal(r.choices[0].finish_reason, "stop", `token ${id}`);
      assert.equal(r.choices[0].text, "");
      assert.equal(r.usage.completion_tokens, 1, "the stop token is counted");
    }
  });

  test(`${name}: stop strings cut the middle, streaming and not`, async () => {
    const args = { model: name, prompt: PREFIX, suffix: SUFFIX, max_tokens: 24, seed: 11 };
    const full = (await client.completions.create(args)).choices[0].text;
    const cps = Array.from(full);
    if (cps.length < 8) return; // too short to cut (random weights)
    const stop = cps.slice(4, 7).join("");
    const want = full.slice(0, full.indexOf(stop));
    const r = await client.completions.create({ ...args, stop });
    assert.equal(r.choices[0].text, want);
    assert.equal(r.choices[0].finish_reason, "stop");
    const s = await streamText(await client.completions.create({ ...args, stop, stream: true }), false);
    assert.equal(s.text, want);
  });
}

test("a model without FIM tokens answers 400, on completions and chat", async () => {
  await assert.rejects(client.completions.create({ model: "nofim", prompt: PREFIX, suffix: SUFFIX, max_tokens: 4 }),
    (e) => e.status === 400 && e.code === "fim_not_supported" && /fill-in-the-middle/.test(e.message) && e.param === "suffix");
  await assert.rejects(client.chat.completions.create({ model: "nofim", messages: [], prefix: PREFIX, suffix: SUFFIX, max_tokens: 4 }),
    (e) => e.status === 400 && e.code === "fim_not_supported");
  // the same model still completes plain prompts
  const ok = await client.completions.create({ model: "nofim", prompt: PREFIX, max_tokens: 2 });
  assert.equal(ok.object, "text_completion");
});

test("FIM request validation", async () => {
  const bad = [
    [{ model: "qwen", prompt: "a", suffix: 3 }, "suffix", "/v1/completions"],
    [{ model: "qwen", prompt: "a", suffix: "b", echo: true }, "echo", "/v1/completions"],
    [{ model: "qwen", prompt: "a", suffix: "b", fim_order: "msp" }, "fim_order", "/v1/completions"],
    [{ model: "qwen", messages: [{ role: "user", content: "x" }], suffix: "b" }, "prefix", "/v1/chat/completions"],
    [{ model: "qwen", prefix: "a" }, "messages", "/v1/chat/completions"],
  ];
  for (const [body, param, route] of bad) {
    const r = await fetch(srv.url + route, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal((await r.json()).error.param, param, JSON.stringify(body));
  }
  await waitIdle(srv.url);
});
