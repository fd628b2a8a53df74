// A small version of bench/http/load.mjs: concurrent streaming clients, a
// quarter of them disconnecting early; no 5xx, every finished stream ends
// with [DONE], and no sequence is left alive afterwards.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer } from "./lib/server.mjs";
import { runLoad } from "../../bench/http/load.mjs";

test("16 concurrent streams, some disconnecting: zero 5xx, zero leaked sequences", async () => {
  const srv = await startServer({ args: ["--max-running", "16", "--ctx", "256"] });
  try {
    const st = await runLoad({ url: srv.url, clients: 16, requests: 1, maxTokens: 12 });
    assert.deepEqual(st.errors, []);
    assert.equal(st.http5xx, 0);
    assert.equal(st.live_after, 0);
    assert.equal(st.ok, 12);
    assert.equal(st.aborted, 4);
    assert.ok(st.pass);
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});
