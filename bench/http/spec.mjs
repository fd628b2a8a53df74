// Speculative decoding benchmark over the HTTP API (loopback): one stream,
// greedy (or --temperature T with a seed), with `silica serve --spec ngram`
// and with `--spec off`: two servers on the same model, runs alternating
// between them. Two prompts:
//   repetitive: a block of P token ids repeated (prompt lookup finds drafts
//               at once; the output of a random-weight model also tends to
//               loop, which the drafter follows);
//   random:     P distinct random ids (drafts rarely hit: the overhead).
// Per mode and prompt: decode tok/s (tokens after the first / time after
// the first token), the median of R runs, and the server's
// silica_spec_{draft,accepted}_tokens_total deltas (acceptance rate).
//
//   SILICA_BIN=build/release/silica NODE_PATH=tests/node_modules node bench/http/spec.mjs \
//       [--model models/qwen2.5-0.5b-q8_0-tok.gguf] [--threads 2] [--tokens 64] [--rounds 3]
//       [--prompt 256] [--spec-max 6] [--temperature 0 --seed 1]
import os from "node:os";
import fs from "node:fs";
import { startServer, metrics } from "../../tests/e2e/lib/server.mjs";
import { median, opt, readEvents } from "./lib.mjs";

const MODEL = opt("model", "models/qwen2.5-0.5b-q8_0-tok.gguf");
const THREADS = Number(opt("threads", 2));
const NTOK = Number(opt("tokens", 64));
const ROUNDS = Number(opt("rounds", 3));
const PLEN = Number(opt("prompt", 256));
const SPEC_MAX = opt("spec-max", "");
const TEMP = Number(opt("temperature", 0));
const SEED = Number(opt("seed", 1));

let seed = 4321;
const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed; };
const randomIds = (n) => Array.from({ length: n }, () => 1000 + (rnd() % 50000));
const block = randomIds(24);
const repetitive = Array.from({ length: PLEN }, (_, i) => block[i % block.length]);
const random = randomIds(PLEN);

async function run(url, prompt) {
  const res = await fetch(url + "/v1/completions", {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "m", prompt, max_tokens: NTOK, temperature: TEMP, seed: SEED, stream: true,
      stream_options: { include_usage: true } }),
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let first = -1, last = -1, usage = null;
  await readEvents(res, (j) => {
    if (j.usage) usage = j.usage;
    if (j.choices && j.choices.length) {
      last = performance.now();
      if (first < 0) first = last;
    }
  });
  const n = usage ? usage.completion_tokens : 0;
  return { tps: n > 1 ? (n - 1) / ((last - first) / 1000) : 0, n };
}

const cpu = (os.cpus()[0] || {}).model || "unknown";
console.log(`command: node bench/http/spec.mjs --model ${MODEL} --threads ${THREADS} --tokens ${NTOK} ` +
  `--rounds ${ROUNDS} --prompt ${PLEN}${SPEC_MAX ? " --spec-max " + SPEC_MAX : ""} --temperature ${TEMP} --seed ${SEED}`);
console.log(`machine: ${cpu}, ${os.cpus().length} cpus, load ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}`);
if (!fs.existsSync(MODEL)) throw new Error(`no model at ${MODEL}`);
const rows = [];
// Both servers up at once, runs alternating between them (off, ngram, off,
// ...) so that a change in the machine's load hits both alike.
const srvs = {};
try {
  for (const mode of ["off", "ngram"]) {
    const args = ["--threads", String(THREADS), "--no-auth", "--no-console", "--spec", mode];
    if (SPEC_MAX) args.push("--spec-max", SPEC_MAX);
    srvs[mode] = await startServer({ models: { m: MODEL }, args });
    await run(srvs[mode].url, random.slice(0, 8)); // warm-up: touches the weights
  }
  for (const [name, prompt] of [["repetitive", repetitive], ["random", random]]) {
    const m0 = {}, rates = { off: [], ngram: [] };
    for (const mode of ["off", "ngram"]) m0[mode] = await metrics(srvs[mode].url);
    for (let r = 0; r < ROUNDS; r++)
      for (const mode of ["off", "ngram"]) rates[mode].push((await run(srvs[mode].url, prompt)).tps);
    for (const mode of ["off", "ngram"]) {
      const m1 = await metrics(srvs[mode].url);
      const d = (k) => (m1[`${k}{model="m"}`] || 0) - (m0[mode][`${k}{model="m"}`] || 0);
      rows.push({ mode, prompt: name, tps: median(rates[mode]), drafted: d("silica_spec_draft_tokens_total"),
        accepted: d("silica_spec_accepted_tokens_total"), steps: d("silica_engine_batch_steps_total") });
    }
  }
} finally {
  for (const srv of Object.values(srvs)) await srv.stop();
}
console.log("| --spec | prompt | decode tok/s (median) | drafted | accepted | acceptance | model steps |");
console.log("|---|---|---|---|---|---|---|");
for (const r of rows)
  console.log(`| ${r.mode} | ${r.prompt} | ${r.tps.toFixed(2)} | ${r.drafted} | ${r.accepted} | ` +
    `${r.drafted ? ((100 * r.accepted) / r.drafted).toFixed(1) + " %" : "-"} | ${r.steps} |`);
