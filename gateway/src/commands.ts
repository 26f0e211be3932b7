// The daemon's commands: `trellis daemon` runs it in the foreground; up,
// down, status, ping and logout talk to it over its socket (daemon/).
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { createLogger } from "@trellis/log";
import { ensureDaemon, DaemonConnectionError, request } from "./daemon/client";
import { Daemon } from "./daemon/daemon";
import { DaemonMetrics, type MetricsServer, parseListenAddress, serveMetrics } from "./daemon/metrics";
import type { Netcheck, Request, Response, SetPrefs, Status } from "./daemon/protocol";
import { parseRouteList, RouteListError } from "./daemon/routes";

type Out = (s: string) => void;

export const DAEMON_COMMANDS = [
  "daemon",
  "up",
  "set",
  "down",
  "status",
  "ping",
  "netcheck",
  "logout",
] as const;

/** How long `up` waits for registration and the first map (the daemon's own bound). */
const UP_WAIT_MS = 30_000;
/** How long the daemon waits for the map to show what `set` changed (its default). */
const SET_WAIT_MS = 10_000;

class UsageError extends Error {}

type Options = Record<string, { type: "string" | "boolean"; default?: string | boolean }>;

function parse(
  cmd: string,
  args: string[],
  options: Options,
  positionals = 0,
): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const r = parseArgs({ args, options, strict: true, allowPositionals: positionals > 0 });
    if (r.positionals.length !== positionals) throw new UsageError(`expected ${positionals} argument(s)`);
    return r;
  } catch (e) {
    throw new UsageError(`trellis ${cmd}: ${(e as Error).message}`);
  }
}

/** The settings up and set share: what the node registers and which routes it takes. */
const PREF_OPTIONS = {
  hostname: { type: "string" },
  "advertise-routes": { type: "string" },
  "exit-node": { type: "string" },
} as const satisfies Options;
/** Boolean settings, which also take =true and =false (`--accept-routes=false` turns it off), as Tailscale's. */
const PREF_SWITCHES = ["accept-routes", "advertise-exit-node", "accept-dns"] as const;
type Switch = (typeof PREF_SWITCHES)[number];

/**
 * Take `--NAME`, `--NAME=true` and `--NAME=false` of the boolean settings
 * out of `args` (node:util's parseArgs has no --flag=false); the rest is
 * parsed as usual.
 */
function takeSwitches(
  cmd: string,
  args: string[],
): { rest: string[]; switches: Partial<Record<Switch, boolean>> } {
  const switches: Partial<Record<Switch, boolean>> = {};
  const rest: string[] = [];
  for (const arg of args) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    const name = PREF_SWITCHES.find((n) => n === m?.[1]);
    if (!m || !name) {
      rest.push(arg);
      continue;
    }
    const v = m[2] ?? "true";
    if (v !== "true" && v !== "false")
      throw new UsageError(`trellis ${cmd}: --${name} is true or false, not "${v}"`);
    switches[name] = v === "true";
  }
  return { rest, switches };
}

/** `--advertise-routes` through the one route parser (routes.ts), as a usage error when bad. */
function routesFlag(cmd: string, value: string | undefined): string[] {
  try {
    return parseRouteList(value ?? "");
  } catch (e) {
    if (e instanceof RouteListError) throw new UsageError(`trellis ${cmd}: --advertise-routes: ${e.message}`);
    throw e;
  }
}

/** Run a daemon command; the exit code: 0 done, 1 failed, 2 usage error. */
export async function runDaemonCommand(
  cmd: (typeof DAEMON_COMMANDS)[number],
  args: string[],
  defaultStateDir: string,
  out: Out,
  err: Out,
): Promise<number> {
  const stateDir = { "state-dir": { type: "string" as const, default: defaultStateDir } };
  try {
    switch (cmd) {
      case "daemon": {
        const { values } = parse(cmd, args, {
          ...stateDir,
          "socket-group": { type: "string" },
          metrics: { type: "string" },
        });
        const metrics = values.metrics as string | undefined;
        let listen: { host: string; port: number } | undefined;
        try {
          listen = metrics === undefined ? undefined : parseListenAddress(metrics);
        } catch (e) {
          throw new UsageError(`trellis daemon: --metrics: ${(e as Error).message}`);
        }
        const socketGroup = values["socket-group"] as string | undefined;
        return await daemon({ stateDir: values["state-dir"] as string, socketGroup, metrics: listen }, err);
      }
      case "up": {
        const { rest, switches } = takeSwitches(cmd, args);
        const { values } = parse(cmd, rest, {
          ...stateDir,
          ...PREF_OPTIONS,
          "login-server": { type: "string" },
          "auth-key": { type: "string" },
          userspace: { type: "boolean", default: false },
          tun: { type: "string" },
          "forward-tcp": { type: "string" },
          port: { type: "string" },
          dataplane: { type: "string" },
        });
        const server = values["login-server"] as string | undefined;
        if (!server) throw new UsageError("trellis up: --login-server URL is required");
        const authKey = readAuthKey(values["auth-key"] as string | undefined);
        const req: Request = {
          op: "up",
          prefs: {
            loginServer: server.replace(/\/+$/, ""),
            hostname: (values.hostname as string | undefined) ?? osHostname(),
            advertiseRoutes: routesFlag(cmd, values["advertise-routes"] as string | undefined),
            advertiseExitNode: switches["advertise-exit-node"] ?? false,
            acceptRoutes: switches["accept-routes"] ?? false,
            acceptDns: switches["accept-dns"] ?? false,
            exitNode: exitNodeFlag(values["exit-node"] as string | undefined) ?? null,
            userspace: values.userspace as boolean,
            ...(values.tun ? { tun: values.tun as string } : {}),
            ...(values.port !== undefined ? { port: udpPort(values.port as string) } : {}),
            ...(values.dataplane !== undefined
              ? { dataplane: dataplaneFlag(values.dataplane as string) }
              : {}),
            forwardTcp: list(values["forward-tcp"] as string | undefined).map((p) => {
              const n = Number(p);
              if (!Number.isInteger(n) || n < 1 || n > 65535)
                throw new UsageError(`trellis up: bad port ${p} in --forward-tcp`);
              return n;
            }),
          },
          ...(authKey ? { authKey } : {}),
          waitMs: UP_WAIT_MS,
        };
        if (req.prefs.exitNode && req.prefs.userspace) {
          throw new UsageError("trellis up: --exit-node needs TUN mode (the host's traffic goes through it)");
        }
        if (req.prefs.dataplane && req.prefs.dataplane !== "auto" && req.prefs.userspace) {
          throw new UsageError("trellis up: --dataplane is for TUN mode (--userspace has its own stack)");
        }
        if (req.prefs.forwardTcp?.length && !req.prefs.userspace) {
          throw new UsageError(
            "trellis up: --forward-tcp is for --userspace (in TUN mode the kernel answers)",
          );
        }
        const dir = values["state-dir"] as string;
        const started = await ensureDaemon(dir);
        if (started) err(`trellis: started the daemon (log: ${dir}/trellisd.log)\n`);
        const res = await request(dir, req, UP_WAIT_MS + 15_000);
        if (!res.ok) return failed(cmd, res, err);
        if (!("status" in res)) return unexpected(cmd, err);
        printUp(res.status, out);
        return 0;
      }
      case "set": {
        const { rest, switches } = takeSwitches(cmd, args);
        const { values } = parse(cmd, rest, { ...stateDir, ...PREF_OPTIONS });
        const hostname = values.hostname as string | undefined;
        const routes = values["advertise-routes"] as string | undefined;
        const prefs: SetPrefs = {
          ...(hostname !== undefined ? { hostname } : {}),
          ...(routes !== undefined ? { advertiseRoutes: routesFlag(cmd, routes) } : {}),
          ...(switches["advertise-exit-node"] !== undefined
            ? { advertiseExitNode: switches["advertise-exit-node"] }
            : {}),
          ...(switches["accept-routes"] !== undefined ? { acceptRoutes: switches["accept-routes"] } : {}),
          ...(switches["accept-dns"] !== undefined ? { acceptDns: switches["accept-dns"] } : {}),
          ...(values["exit-node"] !== undefined
            ? { exitNode: exitNodeFlag(values["exit-node"] as string) ?? null }
            : {}),
        };
        if (Object.keys(prefs).length === 0) {
          throw new UsageError(
            "trellis set: give a setting to change: --hostname, --advertise-routes, --accept-routes, --advertise-exit-node, --exit-node, --accept-dns",
          );
        }
        const res = await request(values["state-dir"] as string, { op: "set", prefs }, SET_WAIT_MS + 20_000);
        if (!res.ok) return failed(cmd, res, err);
        if (!("status" in res)) return unexpected(cmd, err);
        printSet(res.status, out);
        return 0;
      }
      case "down":
      case "logout": {
        const { values } = parse(cmd, args, stateDir);
        const res = await request(values["state-dir"] as string, { op: cmd }, 30_000);
        if (!res.ok) return failed(cmd, res, err);
        out(
          cmd === "down"
            ? "Stopped: the node is down (the daemon keeps running).\n"
            : "Logged out: this node's key no longer works; the next up needs an auth key.\n",
        );
        return 0;
      }
      case "status": {
        const { values } = parse(cmd, args, { ...stateDir, json: { type: "boolean", default: false } });
        const res = await request(values["state-dir"] as string, { op: "status" }, 10_000);
        if (!res.ok) return failed(cmd, res, err);
        if (!("status" in res)) return unexpected(cmd, err);
        out(values.json ? `${JSON.stringify(res.status, null, 2)}\n` : formatStatus(res.status));
        return 0;
      }
      case "netcheck": {
        const { values } = parse(cmd, args, { ...stateDir, json: { type: "boolean", default: false } });
        const res = await request(values["state-dir"] as string, { op: "netcheck" }, 20_000);
        if (!res.ok) return failed(cmd, res, err);
        if (!("netcheck" in res)) return unexpected(cmd, err);
        out(values.json ? `${JSON.stringify(res.netcheck, null, 2)}\n` : formatNetcheck(res.netcheck));
        return 0;
      }
      case "ping": {
        const { values, positionals } = parse(
          cmd,
          args,
          { ...stateDir, timeout: { type: "string", default: "5" } },
          1,
        );
        const seconds = Number(values.timeout);
        if (!(seconds > 0 && seconds <= 60)) throw new UsageError("trellis ping: --timeout is 1-60 seconds");
        const res = await request(
          values["state-dir"] as string,
          { op: "ping", peer: positionals[0]!, timeoutMs: Math.round(seconds * 1000) },
          seconds * 1000 + 5000,
        );
        if (!res.ok) return failed(cmd, res, err);
        if (!("ping" in res)) return unexpected(cmd, err);
        const p = res.ping;
        out(`pong from ${p.peer ?? p.address} (${p.address}) via ${p.path} in ${p.rttMs} ms\n`);
        return 0;
      }
    }
  } catch (e) {
    if (e instanceof UsageError) {
      err(`${e.message}\n`);
      return 2;
    }
    if (e instanceof DaemonConnectionError) {
      err(
        `trellis ${cmd}: ${e.message}${e.code === "not_running" && cmd !== "up" ? " (trellis up starts it)" : ""}\n`,
      );
      return 1;
    }
    throw e;
  }
}

function failed(cmd: string, res: Extract<Response, { ok: false }>, err: Out): number {
  err(`trellis ${cmd}: ${res.error.message}\n`);
  return 1;
}

function unexpected(cmd: string, err: Out): number {
  err(`trellis ${cmd}: the daemon answered with something else than asked\n`);
  return 1;
}

function list(s: string | undefined): string[] {
  return (s ?? "")
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);
}

/** `--exit-node PEER`; an empty value (`--exit-node=`) means none. */
function exitNodeFlag(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  return t === "" ? undefined : t;
}

function udpPort(text: string): number {
  const n = Number(text);
  if (!/^\d{1,5}$/.test(text) || n > 65535)
    throw new UsageError(`trellis up: --port must be 0-65535, not ${text}`);
  return n;
}

function dataplaneFlag(text: string): "auto" | "native" | "wasm" {
  if (text === "auto" || text === "native" || text === "wasm") return text;
  throw new UsageError(`trellis up: --dataplane must be native, wasm or auto, not ${text}`);
}

function osHostname(): string {
  try {
    return readFileSync("/proc/sys/kernel/hostname", "utf8").trim() || "gateway";
  } catch {
    return "gateway"; // not Linux: the server makes the name unique anyway
  }
}

/** `--auth-key KEY`, `--auth-key file:PATH` (keeps it out of `ps`), or TRELLIS_AUTH_KEY. */
function readAuthKey(flag: string | undefined): string | undefined {
  const v = flag ?? process.env.TRELLIS_AUTH_KEY;
  if (!v) return undefined;
  if (!v.startsWith("file:")) return v;
  try {
    return readFileSync(v.slice(5), "utf8").trim();
  } catch (e) {
    throw new UsageError(`trellis up: cannot read the auth key file ${v.slice(5)}: ${(e as Error).message}`);
  }
}

const bare = (addrs: string[]) => addrs.map((a) => a.split("/")[0]).join(", ");

function printUp(s: Status, out: Out): void {
  const self = s.self;
  if (!self) {
    out(`Registered; waiting for the first map (trellis status shows progress).\n`);
    return;
  }
  out(`Up: this machine is ${self.name} (${self.dnsName.replace(/\.$/, "")}) on ${s.loginServer}\n`);
  out(`  addresses: ${bare(self.addresses)}\n`);
  out(
    s.mode === "tun"
      ? `  mode:      TUN device ${s.tun}, routing 100.64.0.0/10 and fd7a:115c:a1e0::/48${s.dataplane ? ` (${s.dataplane} data plane)` : ""}\n`
      : `  mode:      userspace networking (no TUN device; reachable by ping and forwarded TCP ports; approved routes served with this machine's own sockets)\n`,
  );
  const waiting = s.advertisedRoutes.filter((r) => !s.approvedRoutes.includes(r));
  if (s.approvedRoutes.length) out(`  routes approved: ${s.approvedRoutes.join(", ")}\n`);
  if (waiting.length) {
    out(`  routes advertised, awaiting approval in the console: ${waiting.join(", ")}\n`);
    out(`    approve them at ${s.loginServer}/machines\n`);
  }
}

/** What `set` left in force, and what still waits for an admin. */
function printSet(s: Status, out: Out): void {
  const p = s.prefs;
  if (!p) return;
  out(`Settings of ${s.self?.name ?? p.hostname} (hostname ${p.hostname}):\n`);
  out(`  advertised routes: ${p.advertiseRoutes.join(", ") || "none"}\n`);
  out(`  exit node:         ${p.advertiseExitNode ? "advertised" : "not advertised"}\n`);
  out(
    `  accept routes:     ${p.acceptRoutes ? (s.mode === "tun" ? "yes" : "yes (takes effect in TUN mode only)") : "no"}\n`,
  );
  const waiting = s.advertisedRoutes.filter((r) => !s.approvedRoutes.includes(r));
  if (waiting.length) {
    out(`  awaiting approval in the console: ${waiting.join(", ")}\n`);
    out(`    approve them at ${s.loginServer}/machines\n`);
  }
}

function ago(ms: number | null): string {
  if (ms === null) return "never";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? `${s}s ago` : `${Math.round(s / 60)}m ago`;
}

export function formatStatus(s: Status): string {
  if (s.state === "stopped") {
    return `Stopped${s.loginServer ? ` (logged in at ${s.loginServer}; trellis up starts it)` : " (not logged in)"}\n`;
  }
  const lines: string[] = [];
  lines.push(`${s.state}${s.error ? `: ${s.error}` : ""} — control ${s.control ?? "?"} at ${s.loginServer}`);
  if (s.self)
    lines.push(
      `self   ${s.self.name}  ${bare(s.self.addresses)}  (${s.mode === "tun" ? `TUN ${s.tun}` : "userspace"})`,
    );
  lines.push(
    `relay  ${s.relay.connected ? `region ${s.relay.region}${s.relay.latencyMs !== null ? `, ${s.relay.latencyMs} ms` : ""}` : "not connected"}`,
  );
  if (s.udp) lines.push(`udp    port ${s.udp.port}, endpoints ${s.udp.endpoints.join(", ") || "none yet"}`);
  for (const p of s.peers) {
    lines.push(
      `peer   ${p.name.padEnd(16)} ${bare(p.addresses).padEnd(40)} ${p.online ? p.path : "offline"}${p.rttMs !== null ? ` ${p.rttMs} ms` : ""}  rx ${p.rxBytes} tx ${p.txBytes}  handshake ${ago(p.lastHandshake)}`,
    );
    if (p.online) lines.push(`         ${p.pathDetail}`);
  }
  if (s.exitNode) {
    lines.push(
      `exit   ${s.exitNode.name}: ${s.exitNode.routing ? "internet traffic goes through it" : `not in use (${s.exitNode.error ?? "waiting for the map"})`}`,
    );
  }
  if (s.forwarding?.routes.length || s.forwarding?.error) {
    lines.push(
      `routes ${s.forwarding.routes.join(", ") || "none"} forwarded${s.forwarding.error ? ` (error: ${s.forwarding.error})` : ""}`,
    );
  }
  const waiting = s.advertisedRoutes.filter((r) => !s.approvedRoutes.includes(r));
  if (waiting.length) lines.push(`routes ${waiting.join(", ")} await approval in the console`);
  if (s.acceptedRoutes?.routes.length || s.acceptedRoutes?.error) {
    lines.push(
      `routes ${s.acceptedRoutes.routes.join(", ") || "none"} of peers accepted${s.acceptedRoutes.error ? ` (error: ${s.acceptedRoutes.error})` : ""}`,
    );
  }
  const drops = Object.entries(s.drops);
  if (drops.length) lines.push(`drops  ${drops.map(([k, v]) => `${k}=${v}`).join(" ")}`);
  return `${lines.join("\n")}\n`;
}

export function formatNetcheck(n: Netcheck): string {
  const lines: string[] = ["Report:"];
  lines.push(
    n.udp === null
      ? "  * UDP: no UDP socket on this node"
      : `  * UDP: ${n.udp ? "true" : "false (no STUN server answered; direct paths need UDP)"}${n.port !== null ? ` (local port ${n.port})` : ""}`,
  );
  for (const r of n.stun) {
    lines.push(
      `  * STUN ${r.server}: ${r.mapped ? `mapped to ${r.mapped} in ${r.latencyMs} ms` : "no answer"}`,
    );
  }
  lines.push(
    `  * MappingVariesByDestIP: ${n.mappingVariesByDestIP === null ? "unknown (needs two STUN servers at different addresses)" : String(n.mappingVariesByDestIP)}`,
  );
  lines.push(`  * Endpoints published: ${n.endpoints.join(", ") || "none"}`);
  lines.push(`  * Nearest relay: ${n.homeRegion === null ? "none" : `region ${n.homeRegion}`}`);
  lines.push("  * Relay latencies:");
  for (const [region, ms] of Object.entries(n.relayLatencyMs)) {
    lines.push(`    - region ${region}: ${ms === null ? "unreachable" : `${ms} ms`}`);
  }
  return `${lines.join("\n")}\n`;
}

/** `trellis daemon`: run until SIGTERM or SIGINT, then take everything down. */
async function daemon(
  opts: { stateDir: string; socketGroup?: string; metrics?: { host: string; port: number } },
  err: Out,
): Promise<number> {
  const log = createLogger("trellisd");
  let d: Daemon;
  try {
    d = await Daemon.start({ stateDir: opts.stateDir, log, socketGroup: opts.socketGroup });
  } catch (e) {
    err(`trellis daemon: ${(e as Error).message}\n`);
    return 1;
  }
  log.info({ socket: d.socketPath, pid: process.pid }, "listening");
  let metrics: MetricsServer | undefined;
  if (opts.metrics) {
    try {
      metrics = await serveMetrics(
        opts.metrics,
        new DaemonMetrics(() => d.status(), { processMetrics: true }),
        log,
      );
    } catch (e) {
      // Asked for and not served is a failed start: a monitoring gap nobody would notice.
      err(
        `trellis daemon: cannot serve metrics on ${opts.metrics.host}:${opts.metrics.port}: ${(e as Error).message}\n`,
      );
      await d.stop();
      return 1;
    }
    log.info({ metrics: metrics.address }, "serving metrics at /metrics");
  }
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  log.info({ signal }, "shutting down");
  try {
    await metrics?.close();
    await d.stop();
  } catch (e) {
    log.error({ err: e }, "shutdown was not clean");
    return 1;
  }
  return 0;
}
