#!/usr/bin/env node
// npm run bench -- <name> [--json] [benchmark options]
// npm run bench -- all [--json] [--out FILE]: every benchmark in turn, then
// one markdown table of their figures (baselines and ratios are figures of
// the same run) with the machine they were measured on; with --json, one
// JSON object of every benchmark's figures instead.
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
/** Benchmark name → file; each lives next to the code it measures. */
export const BENCHES = {
  crypto: "wasm/bench/crypto.ts",
  policy: "policy/bench/policy.ts",
  relay: "relay/bench/relay.ts",
  control: "control/bench/control.ts",
  browser: "e2e/bench/browser.ts",
  "browser-apps": "e2e/bench/browser-apps.ts",
  tunnel: "gateway/bench/tunnel.ts",
};
/** Each benchmark of `all` ends within this (a hung one is reported, the others still run). */
const BENCH_TIMEOUT_MS = 20 * 60_000;

/**
 * Run one benchmark with --json; resolves with its output and figures (the
 * JSON object on its last line), or with why there are none. Its human
 * lines go to `echo` as they come.
 */
export function runBench(name, args, echo = (s) => process.stderr.write(s)) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(root, BENCHES[name]), "--json", ...args], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      echo(String(d));
    });
    child.stderr.on("data", (d) => echo(String(d)));
    const timer = setTimeout(() => child.kill("SIGKILL"), BENCH_TIMEOUT_MS);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const last = out.trim().split("\n").pop() ?? "";
      let figures = null;
      try {
        const parsed = JSON.parse(last);
        if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) figures = parsed;
      } catch {
        // no JSON line: the benchmark failed or was skipped; said below
      }
      const error =
        figures === null
          ? signal
            ? `killed (${signal}) after ${BENCH_TIMEOUT_MS / 60_000} min`
            : `exited with ${code} without figures`
          : null;
      resolve({ name, figures, error, header: out.split("\n").filter((l) => l.startsWith("# ")) });
    });
  });
}

/** Where the figures come from: CPU, cores, memory, Node, date. */
export function machine() {
  const c = cpus();
  let os = process.platform;
  try {
    os = /^PRETTY_NAME="?([^"\n]+)/m.exec(readFileSync("/etc/os-release", "utf8"))?.[1] ?? os;
  } catch {
    // not Linux
  }
  return {
    cpu: c[0]?.model.trim() ?? "unknown",
    cores: c.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os,
    node: process.version,
    date: new Date().toISOString().slice(0, 10),
  };
}

/** Every benchmark's figures in one object: their own keys, prefixed with the benchmark's name only on a clash. */
export function merged(results) {
  const out = {};
  for (const r of results) {
    for (const [k, v] of Object.entries(r.figures ?? {})) out[k in out ? `${r.name}.${k}` : k] = v;
  }
  return out;
}

/** The markdown report: the machine, then one table of every figure. */
export function markdown(results, m) {
  const lines = [
    `Measured on ${m.cpu} (${m.cores} cores, ${m.memoryGiB} GiB), ${m.os}, Node ${m.node}, ${m.date}.`,
    "",
    "| benchmark | figure | value |",
    "| --- | --- | --- |",
  ];
  for (const r of results) {
    if (!r.figures) {
      lines.push(`| ${r.name} | — | not measured: ${r.error} |`);
      continue;
    }
    for (const [k, v] of Object.entries(r.figures)) {
      const shown = v === null ? "n/a" : /ratio/.test(k) ? `**${v}**` : String(v);
      lines.push(`| ${r.name} | \`${k}\` | ${shown} |`);
    }
  }
  return `${lines.join("\n")}\n`;
}

async function all(args) {
  const json = args.includes("--json");
  const outAt = args.indexOf("--out");
  const outFile = outAt >= 0 ? args[outAt + 1] : null;
  if (outAt >= 0 && !outFile) {
    console.error("npm run bench -- all: --out needs a file");
    return 2;
  }
  const results = [];
  for (const name of Object.keys(BENCHES)) {
    process.stderr.write(`\n=== bench ${name}\n`);
    results.push(await runBench(name, []));
  }
  const m = machine();
  const text = json ? `${JSON.stringify({ machine: m, ...merged(results) })}\n` : markdown(results, m);
  process.stdout.write(`\n${text}`);
  if (outFile) writeFileSync(outFile, text);
  const failed = results.filter((r) => !r.figures);
  for (const r of failed) process.stderr.write(`bench ${r.name}: ${r.error}\n`);
  return failed.length ? 1 : 0;
}

async function main() {
  const [name, ...rest] = process.argv.slice(2);
  if (!name || !(name in BENCHES || name === "all")) {
    console.error(
      `usage: npm run bench -- <name> [--json]\n       npm run bench -- all [--json] [--out FILE]\nbenchmarks: ${Object.keys(BENCHES).join(", ")}`,
    );
    return 2;
  }
  if (!existsSync(join(root, "node_modules"))) {
    console.error("dependencies are not installed: run `npm start` or `npm test` once first");
    return 2;
  }
  if (name === "all") return all(rest);
  const child = spawn(process.execPath, ["--import", "tsx", join(root, BENCHES[name]), ...rest], {
    cwd: root,
    stdio: "inherit",
  });
  return new Promise((resolve) => child.on("close", (code) => resolve(code ?? 1)));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = await main();
}
