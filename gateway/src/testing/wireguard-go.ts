import { execFileSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execIn, hasCommand, spawnIn } from "./netns";

// A reference WireGuard peer for interop tests: Debian's wireguard-go (the
// userspace implementation, since these machines have no kernel module) in a
// network namespace, configured with wg(8) over its UAPI socket exactly as an
// administrator would. Our own implementation is then tested against the
// real thing rather than against itself.

/** wireguard-go's UAPI sockets live here, one per interface name, host-wide. */
export const WG_RUN_DIR = "/var/run/wireguard";
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
/** Keep at most this much of the daemon's log (the tail). */
const MAX_LOG_CHARS = 512 * 1024;

export class WireguardGoError extends Error {
  override readonly name = "WireguardGoError";
}

export interface WgKeypair {
  /** base64, as wg(8) prints it */
  privateKey: string;
  publicKey: string;
}

function wg(args: string[], input?: string): string {
  try {
    return execFileSync("wg", args, {
      encoding: "utf8",
      input,
      stdio: ["pipe", "pipe", "pipe"],
      timeout: 5_000,
    }).trim();
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? "").trim();
    throw new WireguardGoError(`wg ${args.join(" ")} failed: ${stderr || (err as Error).message}`, {
      cause: err,
    });
  }
}

/** A fresh key pair from `wg genkey | wg pubkey`. */
export function wgKeypair(): WgKeypair {
  const privateKey = wg(["genkey"]);
  return { privateKey, publicKey: wg(["pubkey"], `${privateKey}\n`) };
}

/** A fresh preshared key from `wg genpsk`. */
export function wgPresharedKey(): string {
  return wg(["genpsk"]);
}

export interface WgPeerConfig {
  publicKey: string;
  /** "ip:port" (or "[ip6]:port") */
  endpoint?: string;
  allowedIps: string[];
  persistentKeepalive?: number;
  presharedKey?: string;
}

export interface WireguardGoOptions {
  ns: string;
  /**
   * Interface name (1–15 chars). Must be unique on the host, not just in the
   * namespace: the UAPI socket is named after it in the shared /var/run.
   */
  ifname: string;
  privateKey: string;
  listenPort: number;
  /** The interface's own address with prefix, e.g. "100.64.0.1/32". */
  address: string;
  peers: WgPeerConfig[];
  /** The wireguard-go binary (default: Debian's, on PATH); see newestWireguardGo. */
  binary?: string;
  /** The interface's MTU (default: wireguard-go's 1420). */
  mtu?: number;
}

export interface WireguardGo {
  readonly ns: string;
  readonly ifname: string;
  readonly process: ChildProcess;
  /** SIGTERM (SIGKILL after 5 s); idempotent. */
  stop(): Promise<void>;
  /** `wg show <ifname> dump` */
  show(): Promise<string>;
  /** The peer's latest handshake in unix seconds, 0 before the first one. */
  latestHandshake(peerPublicKey: string): Promise<number>;
  /** What the daemon has logged so far (LOG_LEVEL=verbose; the last 512 KiB). */
  logs(): string;
}

/** Where newestWireguardGo keeps its build (one per machine, reused). */
export const NEWEST_WG_GO_DIR = join(tmpdir(), "trellis-wireguard-go-latest");

/**
 * The newest wireguard-go (GSO/GRO offloads; Debian's 2022 build has none),
 * built from the Go module proxy with `go install …@latest` once per machine
 * (reused for a day). Throws WireguardGoError when Go is missing or the
 * build fails.
 */
export function newestWireguardGo(): string {
  const bin = join(NEWEST_WG_GO_DIR, "bin", "wireguard");
  try {
    if (existsSync(bin) && Date.now() - statSync(bin).mtimeMs < 24 * 3600_000) return bin;
  } catch {
    // built by somebody else meanwhile, or gone: build it
  }
  const go = ["go", "/usr/local/go/bin/go"].find((g) => (g === "go" ? hasCommand("go") : existsSync(g)));
  if (!go) throw new WireguardGoError("Go is not installed: cannot build the newest wireguard-go");
  try {
    execFileSync(go, ["install", "golang.zx2c4.com/wireguard@latest"], {
      cwd: tmpdir(),
      env: { ...process.env, GOBIN: join(NEWEST_WG_GO_DIR, "bin"), GOFLAGS: "-mod=mod" },
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 300_000,
    });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new WireguardGoError(
      `go install golang.zx2c4.com/wireguard@latest failed: ${e.stderr?.toString().trim() || e.message}`,
      { cause: err },
    );
  }
  return bin;
}

/** Whether the daemon and tools are installed, and which are not. */
export function wireguardGoAvailable(): { ok: boolean; reason?: string } {
  const missing = ["wireguard-go", "wg"].filter((cmd) => !hasCommand(cmd));
  if (missing.length) return { ok: false, reason: `not installed: ${missing.join(", ")}` };
  if (!existsSync("/dev/net/tun")) return { ok: false, reason: "/dev/net/tun does not exist" };
  return { ok: true };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolve true when something accepts connections on the unix socket `path`. */
function socketIsLive(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ECONNREFUSED" || err.code === "ENOENT") resolve(false);
      else reject(new WireguardGoError(`cannot probe ${path}: ${err.message}`, { cause: err }));
    });
  });
}

/**
 * Start wireguard-go for `opts.ifname` in `opts.ns`, configure it and bring
 * the interface up with its address and a route per allowed IP. On any
 * failure the daemon is stopped again and the error carries its log.
 */
export async function startWireguardGo(opts: WireguardGoOptions): Promise<WireguardGo> {
  const { ns, ifname } = opts;
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(ifname)) {
    throw new WireguardGoError(`bad interface name ${JSON.stringify(ifname)}`);
  }
  const sockPath = join(WG_RUN_DIR, `${ifname}.sock`);
  // A socket file left by a killed daemon would look like ours at once; a
  // live one belongs to somebody else's interface of the same name.
  if (existsSync(sockPath)) {
    if (await socketIsLive(sockPath)) {
      throw new WireguardGoError(`${sockPath} is in use: another wireguard-go runs ${ifname} on this host`);
    }
    unlinkSync(sockPath);
  }

  const child = spawnIn(ns, opts.binary ?? "wireguard-go", [ifname], {
    WG_PROCESS_FOREGROUND: "1",
    LOG_LEVEL: "verbose",
  });
  child.stdin?.end();
  let log = "";
  const append = (chunk: Buffer) => {
    log += chunk.toString("utf8");
    if (log.length > MAX_LOG_CHARS) log = log.slice(log.length - MAX_LOG_CHARS);
  };
  child.stdout?.on("data", append);
  child.stderr?.on("data", append);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exited = { code, signal };
      resolve();
    });
  });
  let spawnError: Error | undefined;
  child.once("error", (err) => {
    spawnError = err;
  });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (!exited && !spawnError) {
        child.kill("SIGTERM");
        const timedOut = await Promise.race([
          exit.then(() => false),
          sleep(STOP_TIMEOUT_MS).then(() => true),
        ]);
        if (timedOut) {
          child.kill("SIGKILL");
          await Promise.race([exit, sleep(STOP_TIMEOUT_MS)]);
        }
      }
      // wireguard-go removes its socket on SIGTERM, not when killed.
      if (existsSync(sockPath) && !(await socketIsLive(sockPath))) rmSync(sockPath, { force: true });
    })();
    return stopping;
  };

  const fail = async (what: string, err?: unknown): Promise<never> => {
    await stop();
    const cause = err instanceof Error ? `: ${err.message}` : "";
    throw new WireguardGoError(`wireguard-go ${ifname} in ${ns}: ${what}${cause}\n--- log ---\n${log}`, {
      cause: err,
    });
  };

  // Ready once the UAPI socket answers; the TUN device exists by then.
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (spawnError) return fail("could not start", spawnError);
    if (exited) return fail(`exited with ${exited.code ?? exited.signal} during startup`);
    if (existsSync(sockPath) && (await socketIsLive(sockPath))) break;
    if (Date.now() > deadline) return fail(`no UAPI socket at ${sockPath} after ${START_TIMEOUT_MS} ms`);
    await sleep(50);
  }

  const dir = mkdtempSync(join(tmpdir(), "trellis-wg-"));
  try {
    const keyFile = (name: string, key: string) => {
      const path = join(dir, name);
      writeFileSync(path, `${key}\n`, { mode: 0o600 });
      return path;
    };
    const args = ["set", ifname, "private-key", keyFile("private.key", opts.privateKey)];
    args.push("listen-port", String(opts.listenPort));
    opts.peers.forEach((peer, i) => {
      args.push("peer", peer.publicKey);
      if (peer.presharedKey) args.push("preshared-key", keyFile(`peer${i}.psk`, peer.presharedKey));
      if (peer.endpoint) args.push("endpoint", peer.endpoint);
      if (peer.allowedIps.length) args.push("allowed-ips", peer.allowedIps.join(","));
      if (peer.persistentKeepalive !== undefined) {
        args.push("persistent-keepalive", String(peer.persistentKeepalive));
      }
    });
    await execIn(ns, "wg", args);
    await execIn(ns, "ip", ["addr", "add", opts.address, "dev", ifname]);
    // Up before the routes: the kernel refuses routes via a link that is down.
    await execIn(ns, "ip", ["link", "set", ifname, ...(opts.mtu ? ["mtu", String(opts.mtu)] : []), "up"]);
    for (const peer of opts.peers) {
      for (const cidr of peer.allowedIps) {
        // replace, not add: the interface's own prefix may already cover it.
        await execIn(ns, "ip", ["route", "replace", cidr, "dev", ifname]);
      }
    }
  } catch (err) {
    return fail("configuration failed", err);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const show = async () => (await execIn(ns, "wg", ["show", ifname, "dump"])).stdout;
  return {
    ns,
    ifname,
    process: child,
    stop,
    show,
    async latestHandshake(peerPublicKey: string): Promise<number> {
      // dump: one line for the interface, then per peer (tab-separated):
      // public-key preshared-key endpoint allowed-ips latest-handshake rx tx keepalive
      const lines = (await show()).trim().split("\n").slice(1);
      const fields = lines.map((l) => l.split("\t")).find((f) => f[0] === peerPublicKey);
      if (!fields) throw new WireguardGoError(`${ifname} has no peer ${peerPublicKey}`);
      const t = Number(fields[4]);
      if (!Number.isInteger(t)) throw new WireguardGoError(`unexpected wg dump line: ${fields.join(" ")}`);
      return t;
    },
    logs: () => log,
  };
}
