#!/usr/bin/env node
// First-run setup shared by `npm start` and `npm test`: install dependencies,
// generate the Prisma clients, build the gateway's native addon, build the web
// app. Every step is skipped when its inputs have not changed since it last
// ran, so later runs start at once.
// Plain Node only: this runs before any dependency is installed.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

function say(msg) {
  process.stderr.write(`trellis setup: ${msg}\n`);
}

/** How often a long step says it is still working. */
const HEARTBEAT_MS = 20_000;

/**
 * Run one step's command with its output held back: a step that works says
 * only what it is doing (and, every 20 s, that it still is); one that fails
 * shows the last lines of its output.
 */
function run(what, cmd, args, env = {}) {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env },
    });
    // Enough to show why a step failed, bounded whatever a tool prints.
    const tail = [];
    let tailBytes = 0;
    const keep = (chunk) => {
      tail.push(chunk);
      tailBytes += chunk.length;
      while (tailBytes > 64 * 1024 && tail.length > 1) tailBytes -= tail.shift().length;
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    const beat = setInterval(
      () => say(`still ${what} (${Math.round((Date.now() - started) / 1000)} s)`),
      HEARTBEAT_MS,
    );
    child.on("error", (err) => {
      clearInterval(beat);
      reject(new Error(`${what}: could not run ${cmd}: ${err.message}`));
    });
    child.on("close", (code, signal) => {
      clearInterval(beat);
      if (code === 0) {
        say(`done ${what} (${Math.round((Date.now() - started) / 1000)} s)`);
        return resolve();
      }
      const output = Buffer.concat(tail).toString("utf8").trim().split("\n").slice(-40).join("\n");
      process.stderr.write(`${output}\n`);
      reject(
        new Error(`${what} failed: ${cmd} ${args.join(" ")} exited with ${code ?? signal} (output above)`),
      );
    });
  });
}

/** Hash the contents of files and directories (recursively, skipping build output). */
function hashInputs(paths) {
  const h = createHash("sha256");
  // Tests, their data and benchmarks are no input of any build.
  // next-env.d.ts and tsbuildinfo files are written by the builds and type checks themselves.
  const skip = new Set([
    "node_modules",
    ".next",
    "target",
    "generated",
    ".turbo",
    "testdata",
    "bench",
    "next-env.d.ts",
  ]);
  const isTest = (name) => /\.test\.tsx?$/.test(name) || name.endsWith(".tsbuildinfo");
  const walk = (p) => {
    if (!existsSync(p)) return;
    const st = statSync(p);
    if (st.isDirectory()) {
      for (const name of readdirSync(p).sort()) if (!skip.has(name) && !isTest(name)) walk(join(p, name));
    } else {
      h.update(relative(ROOT, p)).update("\0").update(readFileSync(p)).update("\0");
    }
  };
  paths.forEach((p) => walk(join(ROOT, p)));
  return h.digest("hex");
}

function stamped(stampFile, hash) {
  return existsSync(stampFile) && readFileSync(stampFile, "utf8") === hash;
}

function stamp(stampFile, hash) {
  mkdirSync(dirname(stampFile), { recursive: true });
  writeFileSync(stampFile, hash);
}

export function checkNode() {
  const [major, minor] = process.versions.node.split(".").map(Number);
  if (major < 20 || (major === 20 && minor < 19)) {
    throw new Error(`Node.js 20.19 or newer is required; this is ${process.versions.node}`);
  }
}

export async function ensureInstall() {
  const hash = hashInputs(["package-lock.json"]);
  const stampFile = join(ROOT, "node_modules", ".trellis-install");
  if (stamped(stampFile, hash)) return;
  say("installing dependencies with npm ci (first run: a few minutes; better-sqlite3 compiles from source)");
  const env = { npm_config_fund: "false", npm_config_audit: "false", npm_config_update_notifier: "false" };
  // Build native addons against the local Node headers instead of downloading them.
  if (existsSync("/usr/include/node/node.h")) env.npm_config_nodedir = "/usr";
  await run("installing dependencies", "npm", ["ci", "--no-fund", "--no-audit", "--loglevel=error"], env);
  stamp(stampFile, hash);
}

export async function ensureGenerate() {
  for (const provider of ["sqlite", "postgresql"]) {
    const hash = hashInputs(["prisma/schema", `prisma/${provider}`, "package-lock.json"]);
    const out = join(ROOT, "prisma", "generated", provider);
    const stampFile = join(out, ".trellis-generated");
    if (stamped(stampFile, hash) && existsSync(join(out, "client.ts"))) continue;
    say(`generating the Prisma client for ${provider}`);
    // Generation needs no schema engine; pointing Prisma at /bin/true stops it
    // from trying to download one, which fails offline.
    await run(
      `generating the Prisma client for ${provider}`,
      process.execPath,
      [join(ROOT, "node_modules/prisma/build/index.js"), "generate", "--schema", `prisma/${provider}`],
      {
        PRISMA_SCHEMA_ENGINE_BINARY: "/bin/true",
        PRISMA_HIDE_UPDATE_MESSAGE: "1",
        CHECKPOINT_DISABLE: "1",
      },
    );
    stamp(stampFile, hash);
  }
}

/** Whether `cmd` is on PATH (plain sh, no dependencies). */
function hasCommand(cmd) {
  return spawnSync("sh", ["-c", 'command -v "$1"', "sh", cmd], { stdio: "ignore" }).status === 0;
}

/**
 * Build the gateway's TUN addon (gateway/native, C against Node-API) with
 * node-gyp. Optional: without a compiler only the gateway's TUN tests need it,
 * and they skip with a reason, so a failed build is reported, not fatal. It is
 * retried on the next run, once the toolchain may have been installed.
 */
export function ensureNative() {
  const gateway = join(ROOT, "gateway");
  const addon = join(gateway, "build", "Release", "trellis_tun.node");
  const hash = hashInputs(["gateway/native", "gateway/binding.gyp"]);
  // Inside build/, which `node-gyp rebuild` starts by deleting.
  const stampFile = join(gateway, "build", ".trellis-native");
  if (stamped(stampFile, hash) && existsSync(addon)) return;
  const skipped = (why) => say(`not building the gateway's TUN addon: ${why}; the TUN tests will be skipped`);
  if (process.platform !== "linux") return skipped(`TUN devices need Linux, not ${process.platform}`);
  const missing = ["cc", "make", "python3"].filter((cmd) => !hasCommand(cmd));
  if (missing.length) {
    return skipped(`${missing.join(", ")} not found (apt-get install build-essential python3)`);
  }
  const nodeGyp = join(ROOT, "node_modules", "node-gyp", "bin", "node-gyp.js");
  if (!existsSync(nodeGyp)) return skipped(`${relative(ROOT, nodeGyp)} is missing (npm ci installs it)`);
  say("building the gateway's TUN addon (node-gyp)");
  const args = [nodeGyp, "rebuild", "--loglevel=warn"];
  // Build against the local Node headers instead of downloading them, which fails offline.
  if (existsSync("/usr/include/node/node_api.h")) args.push("--nodedir=/usr");
  const res = spawnSync(process.execPath, args, {
    cwd: gateway,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  if (res.status !== 0 || !existsSync(addon)) {
    const output = `${res.stdout ?? ""}${res.stderr ?? ""}`.trim().split("\n").slice(-25).join("\n");
    const why = res.error ? res.error.message : `node-gyp exited with ${res.status ?? res.signal}`;
    process.stderr.write(`${output}\n`);
    return skipped(`the build failed (${why}; output above)`);
  }
  stamp(stampFile, hash);
}

/**
 * The gateway's native data plane (gateway/dataplane: the wasm/ WireGuard
 * crate built for the host as a Node addon, napi-rs driven by plain cargo).
 * Optional for developers like the TUN addon: without cargo, gateways use
 * the WASM engine. Built after ensureNative, whose node-gyp rebuild empties
 * build/ (and with it this addon and its stamp).
 */
export function ensureDataplane() {
  const gateway = join(ROOT, "gateway");
  const addon = join(gateway, "build", "Release", "trellis_dataplane.node");
  const hash = hashInputs([
    "gateway/dataplane/src",
    "gateway/dataplane/Cargo.toml",
    "gateway/dataplane/Cargo.lock",
    "gateway/dataplane/build.rs",
    "gateway/dataplane/.cargo/config.toml",
    "wasm/src",
    "wasm/Cargo.toml",
  ]);
  const stampFile = join(gateway, "build", ".trellis-dataplane");
  if (stamped(stampFile, hash) && existsSync(addon)) return;
  const skipped = (why) =>
    say(`not building the gateway's native data plane: ${why}; gateways will use the WASM engine`);
  if (process.platform !== "linux") return skipped(`it needs Linux, not ${process.platform}`);
  const cargo = [join(process.env.HOME ?? "/root", ".cargo", "bin", "cargo"), "cargo"].find((c) =>
    c === "cargo" ? hasCommand("cargo") : existsSync(c),
  );
  if (!cargo) return skipped("cargo not found (install Rust with rustup)");
  say("building the gateway's native data plane (cargo, a few minutes the first time)");
  const crate = join(gateway, "dataplane");
  const res = spawnSync(cargo, ["build", "--release", "--locked", "--features", "node", "--quiet"], {
    cwd: crate,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, CARGO_TARGET_DIR: join(crate, "target") },
  });
  const built = join(crate, "target", "release", "libtrellis_dataplane.so");
  if (res.status !== 0 || !existsSync(built)) {
    const output = `${res.stdout ?? ""}${res.stderr ?? ""}`.trim().split("\n").slice(-25).join("\n");
    const why = res.error ? res.error.message : `cargo exited with ${res.status ?? res.signal}`;
    process.stderr.write(`${output}\n`);
    return skipped(`the build failed (${why}; output above)`);
  }
  mkdirSync(dirname(addon), { recursive: true });
  copyFileSync(built, addon);
  stamp(stampFile, hash);
}

export function ensureWasm() {
  const wasm = join(ROOT, "wasm/pkg/node/trellis_wasm_bg.wasm");
  if (!existsSync(wasm)) {
    throw new Error(
      "wasm/pkg is missing: it is committed; restore it with git, or rebuild with `npm run build:wasm`",
    );
  }
}

/** The web build's inputs, hashed. */
export function webInputsHash() {
  // Everything the app bundles: its own code and the workspace packages it imports
  // (the browser node's worker takes in client/ and the WASM module).
  return hashInputs([
    "web",
    "proto/src",
    "policy/src",
    "control/src",
    "client/src",
    "relay/src",
    "log/src",
    "prisma/src",
    "wasm/ts",
    "wasm/pkg/web",
    "wasm/pkg/web-simd",
    "package-lock.json",
  ]);
}

export async function ensureWebBuild() {
  const hash = webInputsHash();
  const stampFile = join(ROOT, "web", ".next", "trellis-build");
  if (stamped(stampFile, hash) && existsSync(join(ROOT, "web", ".next", "BUILD_ID"))) return;
  say("building the web app (next build)");
  await run(
    "building the web app",
    process.execPath,
    [join(ROOT, "node_modules/next/dist/bin/next"), "build", "web"],
    {
      NEXT_TELEMETRY_DISABLED: "1",
    },
  );
  stamp(stampFile, hash);
}

/**
 * What the gateway's daemon needs (gateway/packaging/install.sh): the
 * dependencies, the TUN addon and the committed WASM; no database client and
 * no web build.
 */
export async function setupGateway() {
  checkNode();
  await ensureInstall();
  ensureNative();
  ensureDataplane();
  ensureWasm();
}

/** Everything `npm start` and `npm test` need before they run. */
export async function setupAll() {
  checkNode();
  await ensureInstall();
  await ensureGenerate();
  ensureNative();
  ensureDataplane();
  ensureWasm();
  await ensureWebBuild();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const only = process.argv.indexOf("--only");
  try {
    const what = only > 0 ? process.argv[only + 1] : undefined;
    if (what === "generate") await ensureGenerate();
    else if (what === "gateway") await setupGateway();
    else if (what === undefined) await setupAll();
    else throw new Error(`--only takes generate or gateway, not ${what}`);
  } catch (err) {
    say(err instanceof Error ? err.message : String(err));
    process.exit(1);
  }
}
