// Structured output end to end: single-stream decode rate with
// response_format json_object (and a 20-property json_schema) against
// unconstrained decoding, over the HTTP API (loopback, starts its own
// server). Runs alternate A/B/A/B... so load drifts hit every variant alike;
// the rate of one run is its steady decode rate: (chunks - 1) / (last chunk
// time - first chunk time), so prefill and the grammar's index build (a
// warm-up request builds it) are excluded. Reports the median per variant,
// the median of the per-round ratios (paired: same round, adjacent in
// time), and the server's CPU time per generated token (utime + stime from
// /proc, so other processes' load on a shared machine mostly cancels out).
//
//   SILICA_BIN=build/release/silica NODE_PATH=tests/node_modules node bench/http/structured.mjs \
//       [--model models/qwen2.5-0.5b-q8_0-tok.gguf] [--threads 2] [--tokens 48] [--rounds 5]
//   --stall: instead, the gaps between a decoding stream's chunks alone and
//   while 10 requests with new (cold) 20-property schemas are submitted next
//   to it — their indexes are built on the engine's grammar worker, so the
//   stream should not stall for a build.
import os from "node:os";
import fs from "node:fs";
import { startServer } from "../../tests/e2e/lib/server.mjs";
import { median, opt, readEvents } from "./lib.mjs";

const argv = process.argv.slice(2);
const MODEL = opt("model", "models/qwen2.5-0.5b-q8_0-tok.gguf");
const THREADS = Number(opt("threads", 2));
const NTOK = Number(opt("tokens", 48));
const ROUNDS = Number(opt("rounds", 5));

const SCHEMA20 = {
  type: "object",
  properties: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`field_${i}`,
    [{ type: "string", maxLength: 40 }, { type: "integer", minimum: 0, maximum: 100000 }, { type: "boolean" },
     { type: "number", minimum: -100, maximum: 100 }, { enum: ["alpha", "beta", "gamma"] }][i % 5]])),
  additionalProperties: false,
};
const VARIANTS = {
  unconstrained: {},
  json_object: { response_format: { type: "json_object" } },
  json_schema_20: { response_format: { type: "json_schema", json_schema: { name: "s20", schema: SCHEMA20 } } },
};

async function streamRate(url, extra, seed, gaps = null) {
  const res = await fetch(url + "/v1/completions", {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "m", prompt: "Here is the record as JSON:", max_tokens: NTOK, temperature: 1, seed,
      stream: true, ...extra }),
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let finish = null;
  const times = [];
  await readEvents(res, (j) => {
    const c = j.choices && j.choices[0];
    if (!c) return;
    if (c.finish_reason) finish = c.finish_reason;
    else times.push(performance.now());
  });
  if (gaps) for (let i = 1; i < times.length; i++) gaps.push(times[i] - times[i - 1]);
  if (times.length < 8) return { rate: NaN, n: times.length, finish };
  return { rate: (times.length - 1) * 1000 / (times[times.length - 1] - times[0]), n: times.length, finish };
}

const cpuMs = (pid) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) * 1000 / 100; // utime + stime, USER_HZ = 100
};

const srv = await startServer({ models: { m: MODEL }, args: ["--threads", String(THREADS), "--ctx", "2048"] });
if (argv.includes("--stall")) {
  try {
    await streamRate(srv.url, {}, 1);
    const pct = (a, q) => { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };
    const alone = [], busy = [];
    let builds = 0, buildMs = 0;
    for (let r = 0; r < ROUNDS; r++) {
      await streamRate(srv.url, {}, 200 + r, alone);
      const p = streamRate(srv.url, {}, 300 + r, busy);
      await new Promise((res) => setTimeout(res, 1500)); // the stream is decoding
      for (let k = 0; k < 10; k++) {
        const schema = JSON.parse(JSON.stringify(SCHEMA20));
        schema.properties.field_0.maxLength = 41 + r * 10 + k; // a new schema: a cold index build
        const t0 = performance.now();
        const res = await fetch(srv.url + "/v1/completions", { method: "POST", headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "m", prompt: "x", max_tokens: 1,
            response_format: { type: "json_schema", json_schema: { name: "cold", schema } } }) });
        await res.text();
        buildMs += performance.now() - t0;
        builds++;
      }
      await p;
    }
    console.log(`model ${MODEL}, ${THREADS} threads, ${ROUNDS} rounds of ${NTOK} tokens; load ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}`);
    console.log("| decoding stream | chunk gaps | p50 gap ms | p90 gap ms | max gap ms |");
    console.log("|---|---|---|---|---|");
    for (const [k, g] of [["alone", alone], ["while cold schemas are indexed", busy]])
      console.log(`| ${k} | ${g.length} | ${pct(g, 0.5).toFixed(1)} | ${pct(g, 0.9).toFixed(1)} | ${Math.max(...g).toFixed(1)} |`);
    console.log(`cold-schema requests (index build + prefill + 1 token): ${builds}, mean ${(buildMs / builds).toFixed(1)} ms`);
  } finally {
    await srv.stop();
  }
  process.exit(0);
}
try {
  for (const v of Object.values(VARIANTS)) await streamRate(srv.url, v, 1); // warm-up: index builds, page-in
  const keys = Object.keys(VARIANTS);
  const rates = Object.fromEntries(keys.map((k) => [k, []]));
  const ratios = Object.fromEntries(keys.map((k) => [k, []]));
  const cpu = Object.fromEntries(keys.map((k) => [k, []]));
  const info = Object.fromEntries(keys.map((k) => [k, []]));
  for (let r = 0; r < ROUNDS; r++) {
    const round = {};
    for (const [k, v] of Object.entries(VARIANTS)) {
      const c0 = cpuMs(srv.proc.pid);
      const x = await streamRate(srv.url, v, 100 + r);
      const c1 = cpuMs(srv.proc.pid);
      round[k] = x.rate;
      if (Number.isFinite(x.rate)) rates[k].push(x.rate);
      if (x.n > 0) cpu[k].push((c1 - c0) / x.n);
      info[k].push(`${x.n}${x.finish === "stop" ? "s" : ""}`);
    }
    for (const k of keys)
      if (Number.isFinite(round[k]) && Number.isFinite(round.unconstrained)) ratios[k].push(round[k] / round.unconstrained);
  }
  const base = median(rates.unconstrained), cbase = median(cpu.unconstrained);
  console.log(`model ${MODEL}, ${THREADS} threads, ${NTOK} tokens, ${ROUNDS} rounds; load ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}`);
  console.log("| variant | median decode tok/s | vs unconstrained | median paired ratio | server CPU ms/token (vs unconstrained) | runs (tok/s) | tokens per run |");
  console.log("|---|---|---|---|---|---|---|");
  for (const k of keys) {
    const m = median(rates[k]), c = median(cpu[k]);
    console.log(`| ${k} | ${m.toFixed(2)} | ${(100 * m / base).toFixed(1)} % | ${(100 * median(ratios[k])).toFixed(1)} % | ${c.toFixed(1)} (${(100 * cbase / c).toFixed(1)} % speed) | ${rates[k].map((x) => x.toFixed(2)).join(", ")} | ${info[k].join(" ")} |`);
  }
} finally {
  await srv.stop();
}
