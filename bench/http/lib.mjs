// What the HTTP benchmarks share: their command-line options, the median,
// and reading a streaming response's server-sent events.

// The value after --k on the command line, else d.
export function opt(k, d) {
  const argv = process.argv.slice(2);
  const i = argv.indexOf("--" + k);
  return i >= 0 ? argv[i + 1] : d;
}

// The upper median (the middle element of the sorted copy).
export const median = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };

// Reads a streaming completion's body to its end and calls onEvent with the
// parsed JSON of each "data: " event (the final "data: [DONE]" and anything
// that is not a data event are skipped), as soon as the event is complete.
export async function readEvents(res, onEvent) {
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, i); buf = buf.slice(i + 2);
      if (!ev.startsWith("data: ") || ev === "data: [DONE]") continue;
      onEvent(JSON.parse(ev.slice(6)));
    }
  }
}
