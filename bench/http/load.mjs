// Bounded loopback load test: C concurrent streaming clients (default 64),
// each sending R requests (default 3); every fourth client disconnects
// after a few chunks. Passes when no response is a 5xx, every completed
// stream ended with [DONE], and the server's live-sequence gauge is back to
// 0 afterwards. Also reports, from /metrics, the I/O thread's work per
// streamed token (detokenize, stop strings, JSON, write) and the latency
// from the engine producing a token to its chunk written.
//
//   node bench/http/load.mjs [--clients 64] [--requests 3] [--max-tokens 32]
//                            [--url http://127.0.0.1:8080]   (else starts a server)
import { startServer, metrics, waitIdle } from "../../tests/e2e/lib/server.mjs";

export async function runLoad({ url, clients = 64, requests = 3, maxTokens = 32, model = "tiny" }) {
  const stats = { ok: 0, aborted: 0, status: {}, errors: [], chunks: 0 };
  const t0 = performance.now();
  async function one(ci, ri) {
    const early = ci % 4 === 3;
    const ac = new AbortController();
    let res;
    try {
      res = await fetch(url + "/v1/chat/completions", {
        method: "POST", signal: ac.signal, headers: { "content-type": "application/json" },
        body: JSON.stringify({ model, stream: true, max_tokens: maxTokens, seed: ci * 100 + ri,
          messages: [{ role: "user", content: `client ${ci} request ${ri}` }] }),
      });
    } catch (e) { stats.errors.push(String(e)); return; }
    stats.status[res.status] = (stats.status[res.status] || 0) + 1;
    if (res.status !== 200) { await res.text(); return; }
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = "", n = 0, done = false;
    try {
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const ev = buf.slice(0, i); buf = buf.slice(i + 2);
          if (ev === "data: [DONE]") done = true; else n++;
        }
        if (early && n >= 3) { ac.abort(); stats.aborted++; stats.chunks += n; return; }
      }
    } catch (e) { if (!early) stats.errors.push(String(e)); return; }
    stats.chunks += n;
    if (done) stats.ok++; else stats.errors.push(`client ${ci}: stream ended without [DONE]`);
  }
  await Promise.all(Array.from({ length: clients }, async (_, ci) => {
    for (let ri = 0; ri < requests; ri++) await one(ci, ri);
  }));
  stats.seconds = (performance.now() - t0) / 1000;
  const idle = await waitIdle(url, 10000).catch((e) => ({ error: String(e) }));
  const m = await metrics(url);
  stats.live_after = idle.live_sequences ?? -1;
  stats.http5xx = m['silica_http_responses_total{class="5xx"}'];
  const n = m.silica_stream_token_work_seconds_count;
  stats.token_work_us_mean = n ? (m.silica_stream_token_work_seconds_sum / n) * 1e6 : null;
  stats.token_work_us_max = m.silica_stream_token_work_seconds_max * 1e6;
  stats.token_latency_us_mean = n ? (m.silica_stream_token_latency_seconds_sum / n) * 1e6 : null;
  stats.engine_step_us_mean = m.silica_engine_steps_total ? (m.silica_engine_busy_seconds_total / m.silica_engine_steps_total) * 1e6 : null;
  stats.pass = stats.errors.length === 0 && stats.http5xx === 0 && stats.live_after === 0 &&
    Object.keys(stats.status).every((s) => s === "200");
  return stats;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (k, d) => { const i = process.argv.indexOf(k); return i > 0 ? process.argv[i + 1] : d; };
  let srv = null, url = arg("--url", null);
  if (!url) { srv = await startServer({ args: ["--max-running", "64", "--ctx", "256"] }); url = srv.url; }
  const stats = await runLoad({ url, clients: Number(arg("--clients", 64)), requests: Number(arg("--requests", 3)),
    maxTokens: Number(arg("--max-tokens", 32)) });
  console.log(JSON.stringify(stats, null, 2));
  if (srv) await srv.stop();
  process.exit(stats.pass ? 0 : 1);
}
