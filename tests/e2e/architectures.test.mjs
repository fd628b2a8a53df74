// Every model architecture beyond the llama/qwen2 core, served at once
// through the openai SDK: tiny random-weight models (the real Qwen3
// tokenizer and chat template) of the mixture-of-experts, GLM, Phi-3,
// Gemma, Granite, SmolLM3, OLMo, DeepSeek (MLA), gpt-oss (attention sinks,
// a window of 8 on alternate layers, biased experts) and Qwen3.5 (Gated
// DeltaNet layers with a recurrent state beside gated attention; dense and
// MoE) and Qwen3-Next layouts, Gemma 4 (window and global layers of
// different head sizes, the last layers reading an earlier layer's KV,
// per-layer embeddings; and with experts beside its dense MLP), Granite 4.0 H
// (granitehybrid: Mamba-2 layers beside attention; dense and MoE with a
// shared expert) and Nemotron-H (nemotron_h: Mamba-2, attention and
// squared-ReLU MLP layers; nemotron_h_moe: sigmoid-routed squared-ReLU
// experts in place of the MLPs). Greedy output must not depend on
// how it is asked for — alone or beside the other models' requests, as
// one of n choices, streamed or not, with the prompt's blocks taken from
// the prefix cache or computed — which exercises the batched forward pass
// (experts grouped per step, sliding windows, soft-capping, per-sequence
// recurrent states, KV blocks of layers of different widths) in the
// engine. The hybrid models reuse a cached prefix through recurrent-state
// checkpoints (a long shared system prompt: the second and third requests
// report cached tokens and answer as a fresh server does), and their and
// gemma4's served greedy ids equal `silica generate` on the same prompt ids.
import { test, before, after } from "node:test";
import { execFileSync } from "node:child_process";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startServer, makeModel, metrics, BIN } from "./lib/server.mjs";

const ARCHS = ["qwen3moe", "qwen2moe", "glm4moe", "glm4", "chatglm", "phi3", "gemma2", "gemma3", "granite",
  "smollm3", "internlm2", "olmo2", "ernie4_5", "deepseek2", "gpt-oss", "gemma4", "gemma4-moe", "qwen35",
  "qwen35moe", "qwen3next", "granitehybrid", "granitehybrid-moe", "nemotron_h", "nemotron_h_moe"];
const HYBRID = new Set(["qwen35", "qwen35moe", "qwen3next", "granitehybrid", "granitehybrid-moe", "nemotron_h",
  "nemotron_h_moe"]);
// the served name of a model whose architecture is another
const ARCH_OF = { "gemma4-moe": "gemma4", "granitehybrid-moe": "granitehybrid" };
// a DeltaNet (Mamba-2) layer then a gated (plain) attention layer
const EXTRA = { "gpt-oss": ["--swa", "8"], qwen35: ["--attn-every", "2"], qwen35moe: ["--attn-every", "2"],
  qwen3next: ["--attn-every", "2"], granitehybrid: ["--attn-every", "2", "--ssm-groups", "2"],
  "granitehybrid-moe": ["--attn-every", "2", "--experts", "4", "--experts-used", "2", "--shared-ffn", "64"],
  // Mamba-2, MLP, Mamba-2, attention
  nemotron_h: ["--layers", "4", "--attn-every", "4", "--ssm-groups", "2"],
  // Mamba-2, MoE, Mamba-2, attention
  nemotron_h_moe: ["--layers", "4", "--attn-every", "4", "--experts", "4", "--experts-used", "2"],
  // gemma4: W G W G W G, the last two reading layers 2 and 3's KV, per-layer embeddings, a window of 8
  gemma4: ["--layers", "6", "--global-every", "2", "--shared-kv", "2", "--per-layer-embd", "8", "--swa", "8"],
  // the 26B-A4B's experts beside the dense MLP
  "gemma4-moe": ["--layers", "4", "--global-every", "2", "--experts", "4", "--experts-used", "2", "--expert-ffn",
    "32", "--swa", "8"] };
// the hybrid models' server checkpoints their states every 256 prompt tokens
const HYBRID_ARGS = ["--state-ckpt-every", "256"];
const MSGS = [{ role: "user", content: "Name three rivers of Europe and say where each one reaches the sea." }];

// the hybrid models (with HYBRID_ARGS) and gemma4-moe run on a second server
const SECOND = new Set([...HYBRID, "gemma4-moe"]);
const servers = [], clientOf = {};
const paths = {};

before(async () => {
  // gpt-oss's window made short enough for the prompt to cross it
  for (const a of ARCHS) paths[a] = makeModel("qwen3", ARCH_OF[a] ?? a, null, EXTRA[a] ?? []);
  for (const group of [ARCHS.filter((a) => !SECOND.has(a)), [...SECOND]]) {
    const models = Object.fromEntries(group.map((a) => [a, paths[a]]));
    const srv = await startServer({ models, args: ["--ctx", "1024", "--max-running", "16",
      ...(group.some((a) => HYBRID.has(a)) ? HYBRID_ARGS : [])] });
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
    // the whole prompt was cached by the first request (hybrid models: up to
    // the checkpoint of its last full block)
    assert.ok(r.usage.prompt_tokens_details.cached_tokens > 0, `${a}: prefix cache`);
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

// a system prompt of some 600 tokens shared by three questions
const SYSTEM = Array.from({ length: 24 }, (_, i) =>
  `Rule ${i + 1}: answer briefly, cite the river's length in kilometres, and never invent a source.`).join(" ");
const QUESTIONS = ["Where does the Danube reach the sea?", "Where does the Rhine reach the sea?",
  "Where does the Loire reach the sea?"];
const askSys = (client, model, q) => client.chat.completions.create({ model, max_tokens: 8, temperature: 0,
  messages: [{ role: "system", content: SYSTEM }, { role: "user", content: q }], return_token_ids: true });

test("hybrid models reuse a long shared system prompt through state checkpoints, answering as a fresh server", async () => {
  const fresh = await startServer({ models: Object.fromEntries([...HYBRID].map((a) => [a, paths[a]])),
    args: ["--ctx", "1024", ...HYBRID_ARGS] });
  try {
    const freshClient = new OpenAI({ baseURL: fresh.url + "/v1", apiKey: "none", maxRetries: 0 });
    for (const a of HYBRID) {
      const r = [];
      for (const q of QUESTIONS) r.push(await askSys(clientOf[a], a, q));
      const cached = r.map((x) => x.usage.prompt_tokens_details.cached_tokens);
      const n = r[0].choices[0].prompt_token_ids.length;
      assert.ok(n > 520 && n < 1000, `${a}: prompt of ${n} tokens`);
      assert.equal(cached[0], 0, `${a}: the first request computes everything`);
      // the questions part at the same token: L tokens are shared, of
      // which the blocks of 16 are cached after the first request; the
      // second starts from the first's checkpoint at 512 (or at its prompt's
      // last full block, when the shared part reaches it) and stores one
      // where its cached blocks ended, from which the third starts
      const ids = r.map((x) => x.choices[0].prompt_token_ids);
      let L = 0;
      while (ids[0][L] === ids[1][L] && ids[0][L] === ids[2][L]) L++;
      const shared = Math.floor(L / 16) * 16;
      assert.ok(ids[1][L] !== ids[2][L] && shared > 512, `${a}: ${L} shared tokens`);
      assert.ok(cached[1] >= 512 && cached[1] <= shared && cached[1] % 16 === 0, `${a}: second request cached ${cached[1]}`);
      assert.equal(cached[2], shared, `${a}: third request`);
      for (const x of r) {
        assert.equal(x.usage.prompt_cache_hit_tokens, x.usage.prompt_tokens_details.cached_tokens);
        assert.equal(x.usage.prompt_cache_miss_tokens, x.usage.prompt_tokens - x.usage.prompt_tokens_details.cached_tokens);
      }
      // each answer is a fresh server's (computed from nothing) for the same messages
      for (let i = 2; i >= 1; i--) {
        const f = await askSys(freshClient, a, QUESTIONS[i]);
        assert.deepEqual(f.choices[0].prompt_token_ids, r[i].choices[0].prompt_token_ids);
        assert.deepEqual(f.choices[0].token_ids, r[i].choices[0].token_ids, `${a}: question ${i} vs a fresh server`);
        if (i === 2) assert.equal(f.usage.prompt_tokens_details.cached_tokens, 0);
      }
    }
    const m = await metrics(servers[1].url);
    for (const a of HYBRID) {
      assert.ok(m[`silica_state_checkpoint_hits_total{model="${a}"}`] >= 2, `${a}: checkpoint hits`);
      assert.ok(m[`silica_state_checkpoints{model="${a}"}`] > 0 && m[`silica_state_checkpoint_bytes{model="${a}"}`] > 0);
    }
  } finally {
    assert.equal(await fresh.stop(), 0, fresh.log());
  }
});
