#!/usr/bin/env node
// npm run bench -- <name> [--json] [benchmark options]
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
/** Benchmark name → file; each lives next to the code it measures. */
const BENCHES = {
  crypto: "wasm/bench/crypto.ts",
  policy: "policy/bench/policy.ts",
  relay: "relay/bench/relay.ts",
  control: "control/bench/control.ts",
  browser: "e2e/bench/browser.ts",
  "browser-apps": "e2e/bench/browser-apps.ts",
};

const [name, ...rest] = process.argv.slice(2);
if (!name || !(name in BENCHES)) {
  console.error(`usage: npm run bench -- <name> [--json]\nbenchmarks: ${Object.keys(BENCHES).join(", ")}`);
  process.exit(2);
}
if (!existsSync(join(root, "node_modules"))) {
  console.error("dependencies are not installed: run `npm start` or `npm test` once first");
  process.exit(2);
}
const res = spawnSync(process.execPath, ["--import", "tsx", join(root, BENCHES[name]), ...rest], {
  cwd: root,
  stdio: "inherit",
});
process.exit(res.status ?? 1);
