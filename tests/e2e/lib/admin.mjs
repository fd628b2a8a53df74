// The `silica admin` CLI for the e2e tests. store() returns the store flags
// (["--data", dir] or ["--db", url]) when called: tests make their data
// directory or database in before(), after these helpers are defined.
import { spawnSync } from "node:child_process";
import { BIN } from "./server.mjs";

export function adminCli(store) {
  // Runs `silica admin STORE ARGS...`; its stdout, or throws with its stderr.
  const admin = (...args) => {
    const r = spawnSync(BIN, ["admin", ...store(), ...args], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`admin ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  // A new account and a first key for it (named keyName, default the
  // account's name): { id, key }.
  const newAccount = (name, keyName = name) => {
    const id = Number(admin("accounts", "create", name).match(/account (\d+)/)[1]);
    const key = admin("keys", "create", "--account", String(id), "--name", keyName).trim();
    return { id, key };
  };
  return { admin, newAccount };
}
