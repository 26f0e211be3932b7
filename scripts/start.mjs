#!/usr/bin/env node
// npm start: set up on first run, then start Trellis (web app, control API and
// relay on one port; SQLite under ./data unless configured otherwise).
import { spawn } from "node:child_process";
import { join } from "node:path";
import { ROOT, setupAll } from "./setup.mjs";

try {
  await setupAll();
} catch (err) {
  process.stderr.write(`trellis: setup failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}

const child = spawn(
  process.execPath,
  ["--import", "tsx", join(ROOT, "web", "server.ts"), ...process.argv.slice(2)],
  {
    cwd: ROOT,
    stdio: "inherit",
    env: { NEXT_TELEMETRY_DISABLED: "1", ...process.env },
  },
);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(sig, () => child.kill(sig));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
