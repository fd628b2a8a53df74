// Speculative decoding through the official openai SDK: a server with
// `--spec ngram` (and a long draft) must give exactly the greedy answers of
// a server with `--spec off` on the same model — chat, streaming chat,
// completions with logprobs, n > 1, stop strings, max_tokens — and its
// /metrics must show drafted and accepted tokens (the prompts repeat
// themselves, and the random-weight model's output loops, so prompt
// lookup finds drafts). A request with "speculative": false drafts nothing.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startServer, tinyModel, metrics } from "./lib/server.mjs";

let on, off, conOn, conOff;

before(async () => {
  const model = tinyModel();
  const base = ["--ctx", "1024", "--no-auth", "--no-console"];
  on = await startServer({ models: { tiny: model }, args: [...base, "--spec", "ngram", "--spec-max", "8"] });
  off = await startServer({ models: { tiny: model }, args: [...base, "--spec", "off"] });
  conOn = new OpenAI({ baseURL: on.url + "/v1", apiKey: "none", maxRetries: 0 });
  conOff = new OpenAI({ baseURL: off.url + "/v1", apiKey: "none", maxRetries: 0 });
});

after(async () => {
  if (on) assert.equal(await on.stop(), 0, on.log());
  if (off) assert.equal(await off.stop(), 0, off.log());
});

const REP = "the quick brown fox jumps over the lazy dog. ".repeat(12);
const MSGS = [{ role: "user", content: "Repeat after me: " + REP }];

async function specCounts(url) {
  const m = await metrics(url);
  return { drafted: m['silica_spec_draft_tokens_total{model="tiny"}'], accepted: m['silica_spec_accepted_tokens_total{model="tiny"}'] };
}

test("chat: the same greedy answer with and without speculation, and drafts were accepted", async () => {
  const before0 = await specCounts(on.url);
  const args = { model: "tiny", messages: MSGS, max_tokens: 80, temperature: 0 };
  const [a, b] = await Promise.all([conOn.chat.completions.create(args), conOff.chat.completions.create(args)]);
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  assert.equal(a.choices[0].finish_reason, b.choices[0].finish_reason);
  assert.deepEqual(a.usage, b.usage);
  const after0 = await specCounts(on.url);
  assert.ok(after0.drafted > before0.drafted, JSON.stringify(after0));
  assert.ok(after0.accepted > before0.accepted, JSON.stringify(after0));
  assert.equal((await specCounts(off.url)).drafted, 0);
});

async function streamText(stream) {
  let text = "", finish = null, lp = [];
  for await (const c of stream) {
    const ch = c.choices[0];
    if (!ch) continue;
    text += ch.delta.content || "";
    if (ch.logprobs && ch.logprobs.content) lp.push(...ch.logprobs.content);
    if (ch.finish_reason) finish = ch.finish_reason;
  }
  return { text, finish, lp };
}

test("streaming chat with logprobs: same text, tokens and logprobs", async () => {
  const args = { model: "tiny", messages: MSGS, max_tokens: 60, temperature: 0, stream: true, logprobs: true,
    top_logprobs: 3 };
  const [a, b] = await Promise.all([conOn.chat.completions.create(args), conOff.chat.completions.create(args)]);
  const [x, y] = await Promise.all([streamText(a), streamText(b)]);
  assert.equal(x.text, y.text);
  assert.equal(x.finish, y.finish);
  assert.equal(x.lp.length, y.lp.length);
  for (let i = 0; i < x.lp.length; i++) {
    assert.equal(x.lp[i].token, y.lp[i].token);
    assert.ok(Math.abs(x.lp[i].logprob - y.lp[i].logprob) < 1e-3, `${i}: ${x.lp[i].logprob} ${y.lp[i].logprob}`);
    assert.deepEqual(x.lp[i].top_logprobs.map((t) => t.token), y.lp[i].top_logprobs.map((t) => t.token));
  }
});

test("completions: n > 1, seeded sampling, stop strings and max_tokens match", async () => {
  for (const extra of [{ temperature: 0, n: 3 }, { temperature: 0.9, top_p: 0.95, seed: 11, n: 2 },
    { temperature: 0, stop: ["fox"] }, { temperature: 0, max_tokens: 7 }]) {
    const args = { model: "tiny", prompt: REP, max_tokens: 50, logprobs: 2, ...extra };
    const [a, b] = await Promise.all([conOn.completions.create(args), conOff.completions.create(args)]);
    assert.equal(a.choices.length, b.choices.length);
    for (let i = 0; i < a.choices.length; i++) {
      assert.equal(a.choices[i].text, b.choices[i].text, JSON.stringify(extra));
      assert.equal(a.choices[i].finish_reason, b.choices[i].finish_reason);
      assert.deepEqual(a.choices[i].logprobs.tokens, b.choices[i].logprobs.tokens);
    }
    assert.deepEqual(a.usage, b.usage, JSON.stringify(extra));
  }
});

test('"speculative": false drafts nothing and answers the same', async () => {
  const c0 = await specCounts(on.url);
  const args = { model: "tiny", prompt: REP, max_tokens: 40, temperature: 0 };
  const a = await conOn.completions.create({ ...args, speculative: false });
  const b = await conOff.completions.create(args);
  assert.equal(a.choices[0].text, b.choices[0].text);
  const c1 = await specCounts(on.url);
  assert.equal(c1.drafted, c0.drafted);
});
