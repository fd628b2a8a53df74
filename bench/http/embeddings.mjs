// Embeddings throughput over the HTTP API (loopback, bounded): C clients
// each send R requests of B inputs of about T tokens (random token ids,
// [CLS] ... [SEP] around them) to POST /v1/embeddings; reported: input
// tokens per second over the whole run (the engine batches inputs of one
// and several requests into one model call) and the median request
// latency. Starts a server on the model unless --url is given.
//
//   SILICA_BIN=build/release/silica node bench/http/embeddings.mjs \
//       --model M.gguf [--threads 2] [--clients 1,4] [--batch 32] [--tokens 128] [--requests 4]
//       [--url http://127.0.0.1:8080 --name MODEL_ID]
import os from "node:os";
import { startServer } from "../../tests/e2e/lib/server.mjs";
import { median, opt } from "./lib.mjs";

const MODEL = opt("model", "");
const THREADS = Number(opt("threads", 2));
const CLIENTS = opt("clients", "1,4").split(",").map(Number);
const BATCH = Number(opt("batch", 32));
const TOKENS = Number(opt("tokens", 128));
const REQUESTS = Number(opt("requests", 4));

let seed = 12345;
const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed; };
// [CLS] (101) + random ids of the committed bert-uncased vocabulary (3,128) + [SEP] (102)
const input = () => [101, ...Array.from({ length: TOKENS - 2 }, () => 1000 + (rnd() % 2000)), 102];

async function embed(url, model) {
  const t0 = performance.now();
  const r = await fetch(url + "/v1/embeddings", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, input: Array.from({ length: BATCH }, input), encoding_format: "base64" }),
  });
  const j = await r.json();
  if (r.status !== 200) throw new Error(JSON.stringify(j));
  return { ms: performance.now() - t0, tokens: j.usage.prompt_tokens };
}

let srv = null, url = opt("url", ""), name = opt("name", "emb");
if (!url) {
  if (!MODEL) throw new Error("--model M.gguf or --url");
  srv = await startServer({ models: { emb: MODEL }, args: ["--threads", String(THREADS)] });
  url = srv.url;
}
console.log(`command: node bench/http/embeddings.mjs --model ${MODEL} --threads ${THREADS} --clients ${CLIENTS} ` +
  `--batch ${BATCH} --tokens ${TOKENS} --requests ${REQUESTS}`);
console.log(`machine: ${os.cpus()[0].model}, ${os.cpus().length} cores`);
await embed(url, name); // warm-up
for (const c of CLIENTS) {
  const lat = [];
  let tokens = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: c }, async () => {
    for (let i = 0; i < REQUESTS; i++) {
      const r = await embed(url, name);
      lat.push(r.ms);
      tokens += r.tokens;
    }
  }));
  const s = (performance.now() - t0) / 1000;
  console.log(`clients ${c}: ${(tokens / s).toFixed(0)} tokens/s, ${c * REQUESTS} requests of ${BATCH} inputs × ` +
    `${TOKENS} tokens, median latency ${median(lat).toFixed(0)} ms`);
}
if (srv) await srv.stop();
