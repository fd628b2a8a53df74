// Continuous-batching benchmark over the HTTP API (loopback, bounded).
//
//  1. Aggregate decode throughput at C = 1, 4, 16, 32 concurrent streams:
//     each stream is a streaming /v1/completions with its own 16 random
//     prompt token ids (no shared prefix) and max_tokens N; the rate is
//     (tokens received by all streams) / (wall time of the wave), and the
//     steady decode rate: chunks arriving while every stream is decoding
//     (after the last first token, before the first stream ends) / that
//     window — prefill excluded.
//  2. Time to first token for a 2,000-token shared system prompt: a request
//     with a fresh 2,000-token prefix + 8-token suffix (miss), then the same
//     prefix with another suffix (hit: usage.prompt_tokens_details.
//     cached_tokens says how much was reused). Median of R rounds.
//
//   SILICA_BIN=build/release/silica node bench/http/batching.mjs \
//       [--model models/qwen2.5-0.5b-q8_0.gguf] [--threads 2] [--tokens 32] [--rounds 3]
//       [--streams 1,4,16,32] [--url http://127.0.0.1:8080 (else starts a server)]
//       [--temperature 0 --top-p 1 --seed S] [--spec off|ngram (the server's decoding; default its own)]
import os from "node:os";
import fs from "node:fs";
import { startServer, metrics, waitIdle, BIN } from "../../tests/e2e/lib/server.mjs";
import { median, opt, readEvents } from "./lib.mjs";

const MODEL = opt("model", "models/qwen2.5-0.5b-q8_0.gguf");
const THREADS = Number(opt("threads", 2));
const NTOK = Number(opt("tokens", 32));
const ROUNDS = Number(opt("rounds", 3));
const STREAMS = opt("streams", "1,4,16,32").split(",").map(Number);
const PREFIX = Number(opt("prefix", 2000));
// sampling of the decode streams: greedy by default; e.g. --temperature 0.8 --top-p 0.9 --seed 1
const TEMP = Number(opt("temperature", 0));
const TOP_P = Number(opt("top-p", 1));
const SEED = opt("seed", "");
const SPEC = opt("spec", "");

let seed = 12345;
const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed; };
const ids = (n) => Array.from({ length: n }, () => 1000 + (rnd() % 50000));

// One streaming completion; resolves { ttft_ms, tokens, ms, usage }.
async function stream(url, prompt, maxTokens) {
  const t0 = performance.now();
  const res = await fetch(url + "/v1/completions", {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "m", prompt, max_tokens: maxTokens, temperature: TEMP, top_p: TOP_P,
      ...(SEED !== "" ? { seed: Number(SEED) } : {}), stream: true,
      stream_options: { include_usage: true } }),
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let ttft = -1, tokens = 0, usage = null;
  const times = [];
  await readEvents(res, (j) => {
    if (j.usage) usage = j.usage;
    if (j.choices && j.choices.length) {
      const now = performance.now();
      if (ttft < 0) ttft = now - t0;
      times.push(now);
      tokens++;
    }
  });
  return { ttft_ms: ttft, tokens: usage ? usage.completion_tokens : tokens, ms: performance.now() - t0, usage, times };
}

async function main() {
  let srv = null, url = opt("url", null);
  const args = ["--threads", String(THREADS), "--max-running", "32", "--ctx", "4096", "--no-auth",
    ...(SPEC ? ["--spec", SPEC] : [])];
  if (!url) {
    srv = await startServer({ models: { m: MODEL }, args });
    url = srv.url;
  }
  console.log("== machine");
  console.log(`${os.cpus()[0].model}, ${os.cpus().length} cores, load ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  console.log(`command: ${BIN} serve --model m=${MODEL} ${args.join(" ")}`);
  console.log(`model file: ${MODEL} (${(fs.statSync(MODEL).size / 1048576).toFixed(1)} MiB)`);
  try {
    await stream(url, ids(16), 4); // warm-up (page in the weights)
    console.log(`\n== decode: C streams × ${NTOK} tokens (16-token distinct prompts), temperature 0`);
    let single = 0;
    for (const c of STREAMS) {
      const rates = [], steady = [];
      let ttfts = [];
      for (let r = 0; r < ROUNDS; r++) {
        const t0 = performance.now();
        const res = await Promise.all(Array.from({ length: c }, () => stream(url, ids(16), NTOK)));
        const ms = performance.now() - t0;
        const tok = res.reduce((a, x) => a + x.tokens, 0);
        rates.push((tok * 1000) / ms);
        const w0 = Math.max(...res.map((x) => x.times[0])), w1 = Math.min(...res.map((x) => x.times[x.times.length - 1]));
        const inWin = res.reduce((a, x) => a + x.times.filter((t) => t > w0 && t <= w1).length, 0);
        if (w1 > w0) steady.push((inWin * 1000) / (w1 - w0));
        ttfts = ttfts.concat(res.map((x) => x.ttft_ms));
        await waitIdle(url, 10000);
      }
      const rate = median(rates), dec = steady.length ? median(steady) : NaN;
      if (c === 1) single = dec;
      console.log(`C=${String(c).padStart(2)}: steady decode ${dec.toFixed(1)} tok/s aggregate (${(dec / c).toFixed(2)} per stream, ` +
        `${(dec / single).toFixed(2)}x single); whole wave incl. prefill ${rate.toFixed(1)} tok/s; median TTFT ${median(ttfts).toFixed(0)} ms` +
        `  [rounds: ${steady.map((x) => x.toFixed(1)).join(", ")}]`);
    }

    if (PREFIX <= 0) return;
    console.log(`\n== TTFT with a ${PREFIX}-token shared system prompt (+8 distinct tokens), max_tokens 1`);
    const miss = [], hit = [];
    let cached = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const sys = ids(PREFIX);
      const a = await stream(url, sys.concat(ids(8)), 1);
      const b = await stream(url, sys.concat(ids(8)), 1);
      miss.push(a.ttft_ms);
      hit.push(b.ttft_ms);
      cached = b.usage?.prompt_tokens_details?.cached_tokens ?? -1;
      if (a.usage?.prompt_tokens_details?.cached_tokens) console.log("  (unexpected: the miss was cached)");
    }
    const m = median(miss), h = median(hit);
    console.log(`miss: ${m.toFixed(0)} ms  [${miss.map((x) => x.toFixed(0)).join(", ")}]`);
    console.log(`hit:  ${h.toFixed(0)} ms  [${hit.map((x) => x.toFixed(0)).join(", ")}], cached_tokens ${cached}`);
    console.log(`hit / miss = ${((100 * h) / m).toFixed(1)}%`);
    const mt = await metrics(url);
    const pick = (k) => Object.entries(mt).filter(([n]) => n.startsWith(k)).map(([n, v]) => `${n} ${v}`);
    console.log("\n== /metrics (engine)");
    for (const k of ["silica_prefix_cache_hit_rate", "silica_kv_blocks_", "silica_state_checkpoint", "silica_engine_preemptions_total",
      "silica_time_to_first_token_seconds_count", "silica_inter_token_latency_seconds_sum",
      "silica_inter_token_latency_seconds_count"])
      for (const l of pick(k)) console.log(l);
  } finally {
    if (srv) await srv.stop();
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
