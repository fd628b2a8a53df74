// Every model architecture beyond the llama/qwen2 core, served at once
// through the openai SDK: tiny random-weight models (the real Qwen3
// tokenizer and chat template) of the mixture-of-experts, GLM, Phi-3,
// Gemma, Granite, SmolLM3, OLMo, DeepSeek (MLA), gpt-oss (attention sinks,
// a window of 8 on alternate layers, biased experts) and Qwen3.5 (Gated
// DeltaNet layers with a recurrent state beside gated attention; dense and
// MoE) and Qwen3-Next layouts, and Gemma 4 (window and global layers of
// different head sizes, the last layers reading an earlier layer's KV,
// per-layer embeddings; and with experts beside its dense MLP). Greedy output must not depend on
// how it is asked for — alone or beside the other models' requests, as
// one of n choices, streamed or not, with the prompt's blocks taken from
// the prefix cache or computed — which exercises the batched forward pass
// (experts grouped per step, sliding windows, soft-capping, per-sequence
// recurrent states, KV blocks of layers of different widths) in the
// engine. The hybrid models reuse no cached prefix (their state is not in
// the KV blocks: cached_tokens 0), and their and gemma4's served greedy ids
// equal `silica generate` on the same prompt ids.
import { test, before, after } from "node:test";
import { execFileSync } from "node:child_process";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startServer, makeModel, BIN } from "./lib/server.mjs";

const ARCHS = ["qwen3moe", "qwen2moe", "glm4moe", "glm4", "chatglm", "phi3", "gemma2", "gemma3", "granite",
  "smollm3", "internlm2", "olmo2", "ernie4_5", "deepseek2", "gpt-oss", "gemma4", "gemma4-moe", "qwen35",
  "qwen35moe", "qwen3next"];
const HYBRID = new Set(["qwen35", "qwen35moe", "qwen3next"]);
// the served name of a model whose architecture is another
const ARCH_OF = { "gemma4-moe": "gemma4" };
// a DeltaNet layer then a gated attention layer
const EXTRA = { "gpt-oss": ["--swa", "8"], qwen35: ["--attn-every", "2"], qwen35moe: ["--attn-every", "2"],
  qwen3next: ["--attn-every", "2"],
  // gemma4: W G W G W G, the last two reading layers 2 and 3's KV, per-layer embeddings, a window of 8
  gemma4: ["--layers", "6", "--global-every", "2", "--shared-kv", "2", "--per-layer-embd", "8", "--swa", "8"],
  // the 26B-A4B's experts beside the dense MLP
  "gemma4-moe": ["--layers", "4", "--global-every", "2", "--experts", "4", "--experts-used", "2", "--expert-ffn",
    "32", "--swa", "8"] };
const MSGS = [{ role: "user", content: "Name three rivers of Europe and say where each one reaches the sea." }];

// a server takes at most 16 models: the hybrid ones and gemma4-moe get a second server
const SECOND = new Set([...HYBRID, "gemma4-moe"]);
const servers = [], clientOf = {};
const paths = {};

before(async () => {
  // gpt-oss's window made short enough for the prompt to cross it
  for (const a of ARCHS) paths[a] = makeModel("qwen3", ARCH_OF[a] ?? a, null, EXTRA[a] ?? []);
  for (const group of [ARCHS.filter((a) => !SECOND.has(a)), [...SECOND]]) {
    const models = Object.fromEntries(group.map((a) => [a, paths[a]]));
    const srv = await startServer({ models, args: ["--ctx", "1024", "--max-running", "16"] });
    servers.push(srv);
    const client = new OpenAI({ baseURL: srv.url + "/v1", apiKey: "none", maxRetries: 0 });
    for (const a of group) clientOf[a] = client;
  }
});

after(async () => {
  for (const srv of servers) assert.equal(await srv.stop(), 0, srv.log());
});

const ask = (model, extra = {}) =>
  clientOf[model].chat.completions.create({ model, messages: MSGS, max_tokens: 12, temperature: 0, ...extra });

test("each architecture answers, and the same greedy answer alone, batched, as n choices and streamed", async () => {
  const alone = {};
  for (const a of ARCHS) {
    const r = await ask(a);
    assert.equal(r.model, a);
    assert.equal(typeof r.choices[0].message.content, "string");
    assert.ok(r.usage.completion_tokens > 0, a);
    alone[a] = r.choices[0].message.content;
  }
  // all models at once, two choices each: one engine step batches each
  // model's sequences (the choices share the prompt's blocks)
  const batched = await Promise.all(ARCHS.map((a) => ask(a, { n: 2 })));
  batched.forEach((r, i) => {
    const a = ARCHS[i];
    assert.equal(r.choices.length, 2);
    for (const c of r.choices) assert.equal(c.message.content, alone[a], `${a}: batched choice ${c.index}`);
    // the whole prompt was cached by the first request (hybrid models: nothing reused)
    if (HYBRID.has(a)) assert.equal(r.usage.prompt_tokens_details.cached_tokens, 0, `${a}: no prefix reuse`);
    else assert.ok(r.usage.prompt_tokens_details.cached_tokens > 0, `${a}: prefix cache`);
  });
  for (const a of ARCHS) {
    const stream = await ask(a, { stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    assert.equal(text, alone[a], `${a}: streamed`);
  }
});

test("the hybrid models' and gemma4's (dense and MoE) served greedy ids equal silica generate on the same prompt ids", async () => {
  for (const a of [...HYBRID, "gemma4", "gemma4-moe"]) {
    const r = await ask(a, { return_token_ids: true });
    const c = r.choices[0];
    assert.ok(c.prompt_token_ids.length > 10 && c.token_ids.length > 0, a);
    const out = execFileSync(BIN, ["generate", "--model", paths[a], "-n", String(c.token_ids.length),
      ...c.prompt_token_ids.map(String)], { encoding: "utf8" });
    assert.deepEqual(out.trim().split(/\s+/).map(Number), c.token_ids, `${a}: served vs generate`);
  }
});
