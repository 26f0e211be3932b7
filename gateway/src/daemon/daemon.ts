// trellisd: the gateway's node daemon. It holds the node's key (node.key,
// 0600) and prefs (prefs.json) in the state directory, answers the CLI on a
// Unix socket (protocol.ts), and while up runs one NodeEngine: in TUN mode
// the engine has no userspace stack and a TUN device carries its packets to
// and from the kernel; in userspace mode (--userspace) its own stack is the
// node's host, reachable by ping and by TCP to forwarded ports, and stands in
// for the approved routes' addresses, which it reaches with its own sockets
// (route-forwarder.ts).
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { z } from "zod";
import { ControlClient, ControlRequestError, type NodeEngine, type TcpConnection } from "@trellis/client";
import { UserspaceRouter } from "./route-forwarder";
import { forwardToSocket, NodeIdentity, nodeEngine, openUdpSocket, UdpBindError } from "@trellis/client/node";
import { parseUdpAddr, type UdpSocket } from "@trellis/client";
import type { Logger } from "@trellis/log";
import type { FullMap, RegisterRequest } from "@trellis/proto/node";
import { plainPeerAddresses, SubnetRouter, subnetRoutes } from "./forwarding";
import { HostError, type PacketDevice, TunPacketDevice } from "./host";
import { NativeDataplane, nativeAvailable } from "../dataplane/native";
import { acceptedRoutes, PeerRoutes, routableIPs } from "./routes";
import { addressesOf, ExitRoutes } from "./exit";
import { MagicDnsResolver, ResolvConf } from "./dns";
import { Serial } from "./serial";
import {
  type ErrorBody,
  MAX_REQUEST_BYTES,
  PID_NAME,
  Request,
  type Response,
  type SetPrefs,
  SOCKET_NAME,
  type Status,
  UpPrefs,
} from "./protocol";

const PREFS_NAME = "prefs.json";
/** A client has this long to send its request line. */
const REQUEST_READ_MS = 10_000;
/** Bound on the control server's answer to a registration or logout. */
const CONTROL_CALL_MS = 15_000;
const MAX_CLIENTS = 32;

const PrefsFile = z.object({
  version: z.literal(1),
  prefs: UpPrefs.nullable(),
  /** Bring the node up again when the daemon starts (set by up, cleared by down and logout). */
  wantRunning: z.boolean(),
});
type PrefsFile = z.infer<typeof PrefsFile>;

/** What a node with these prefs registers (os is always linux: the daemon runs on Linux). */
function registration(prefs: UpPrefs): RegisterRequest {
  return { hostname: prefs.hostname, os: "linux", routableIPs: routableIPs(prefs) };
}

/** A request the daemon refuses or cannot carry out; `code` goes to the CLI. */
export class DaemonError extends Error {
  override readonly name = "DaemonError";
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

function errorBody(err: unknown): ErrorBody {
  if (err instanceof DaemonError) return { code: err.code, message: err.message };
  if (err instanceof HostError) return { code: "host", message: err.message };
  if (err instanceof Error) return { code: "internal", message: err.message.slice(0, 4000) };
  return { code: "internal", message: String(err).slice(0, 4000) };
}

/** A control call's failure, for people: what failed, where, and the server's own words. */
function controlFailure(what: string, server: string, err: unknown): DaemonError {
  if (err instanceof ControlRequestError) {
    if (err.code === "network" || err.status === 0) {
      // The client's message names the server and the cause ("could not reach … : fetch failed").
      return new DaemonError(err.code, err.message, { cause: err });
    }
    return new DaemonError(err.code, `the control server refused ${what}: ${err.message} (${err.code})`, {
      cause: err,
    });
  }
  if (err instanceof DaemonError) return err;
  return new DaemonError("network", `${what} at ${server} failed: ${(err as Error).message}`, { cause: err });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new DaemonError("timeout", `${what}: no answer within ${ms / 1000} s`)),
      ms,
    );
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

interface Session {
  prefs: UpPrefs;
  /** What the engine registers on each connection (set changes it). */
  register: RegisterRequest;
  engine: NodeEngine;
  device: PacketDevice | null;
  /** TUN mode: which data plane moves the packets. */
  dataplane: "native" | "wasm" | null;
  /** TUN mode: IP forwarding and masquerade for the approved advertised routes. */
  router: SubnetRouter | null;
  /** Userspace mode: the approved routes reached through the gateway's own sockets. */
  userspaceRouter: UserspaceRouter | null;
  /** Userspace mode: the routes served now. */
  served: string[];
  /** TUN mode: peers' subnet routes routed into the device (--accept-routes). */
  peerRoutes: PeerRoutes | null;
  /** TUN mode: the default route through the exit node (--exit-node). */
  exit: ExitRoutes | null;
  /** Why the exit node asked for is not in use (not in the map, not approved, …). */
  exitError: string | null;
  /** TUN mode: MagicDNS on the node's address, and whether resolv.conf points at it. */
  dns: { resolver: MagicDnsResolver | null; system: boolean; error: string | null } | null;
  /** The daemon's own destinations, resolved (kept out of the exit node's tunnel). */
  bypass: { hosts: string; addresses: string[]; at: number } | null;
  stopForwards: (() => void)[];
  /** The first map arrived (and, in TUN mode, the device is configured). */
  ready: boolean;
  error: string | null;
}

export interface DaemonOptions {
  stateDir: string;
  log: Logger;
  /**
   * A group whose members may use the socket as its owner does (mode 0660,
   * and the state directory 0710 so they can reach it). Without it, or when
   * no such group exists, the socket is 0600: the daemon's user only.
   */
  socketGroup?: string;
}

/** The gid of a group name (NSS, through getent) or number; null when there is no such group. */
function groupId(group: string): number | null {
  if (/^\d+$/.test(group)) return Number(group);
  try {
    const line = execFileSync("getent", ["group", group], { encoding: "utf8", timeout: 5000 });
    const gid = Number(line.split(":")[2]);
    return Number.isInteger(gid) ? gid : null;
  } catch (err) {
    // getent exits 2 for an unknown name; anything else (no getent) is an error worth seeing.
    if ((err as { status?: number }).status === 2) return null;
    throw new DaemonError("bad_group", `cannot look up the group ${group}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

export class Daemon {
  readonly socketPath: string;
  private readonly pidPath: string;
  private readonly prefsPath: string;
  private server: Server | null = null;
  private session: Session | null = null;
  /** up, set, down and logout run one at a time. */
  private readonly serial = new Serial();
  private stopping: Promise<void> | null = null;
  private readonly log: Logger;
  /** /etc/resolv.conf as --accept-dns changes it (the original kept in the state directory). */
  private readonly resolvConf: ResolvConf;

  private constructor(private readonly opts: DaemonOptions) {
    this.socketPath = join(opts.stateDir, SOCKET_NAME);
    this.pidPath = join(opts.stateDir, PID_NAME);
    this.prefsPath = join(opts.stateDir, PREFS_NAME);
    this.log = opts.log;
    this.resolvConf = new ResolvConf(opts.stateDir);
  }

  /** Listen on the state directory's socket; bring the node up again if it was up when the last daemon stopped. */
  static async start(opts: DaemonOptions): Promise<Daemon> {
    mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
    const d = new Daemon(opts);
    await d.listen();
    // A daemon that died while --accept-dns was in effect left resolv.conf pointing at a resolver that is gone.
    try {
      d.resolvConf.restore();
    } catch (err) {
      d.log.warn(
        { err: (err as Error).message },
        "could not put back the resolv.conf a previous daemon changed",
      );
    }
    writeFileSync(d.pidPath, `${process.pid}\n`, { mode: 0o600 });
    const saved = d.readPrefs();
    if (saved.wantRunning && saved.prefs) {
      const prefs = saved.prefs;
      d.log.info({ loginServer: prefs.loginServer }, "bringing the node up again (it was up)");
      d.exclusive(() => d.up(prefs, undefined, 30_000)).catch((err: unknown) =>
        d.log.error({ err: errorBody(err) }, "could not bring the node up again"),
      );
    }
    return d;
  }

  // ---- the socket ----------------------------------------------------------------

  private async listen(): Promise<void> {
    if (existsSync(this.socketPath)) {
      if (await answers(this.socketPath)) {
        throw new DaemonError("already_running", `a daemon already listens on ${this.socketPath}`);
      }
      rmSync(this.socketPath, { force: true }); // left by a daemon that died
    }
    const server = createServer((sock) => this.serve(sock));
    server.maxConnections = MAX_CLIENTS;
    const group = this.opts.socketGroup;
    const gid = group === undefined ? null : groupId(group);
    if (group !== undefined && gid === null)
      this.log.warn({ group }, "no such group: the socket stays 0600 (the daemon's user only)");
    if (gid !== null) {
      // Members reach the socket through the state directory, and list nothing in it.
      chownSync(this.opts.stateDir, -1, gid);
      chmodSync(this.opts.stateDir, 0o710);
    }
    const mode = gid === null ? 0o600 : 0o660;
    // The socket is created with its final mode (no window in which others could connect),
    // owned by the daemon's group until the chown below, then checked.
    const umask = process.umask(0o777 & ~mode);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(this.socketPath, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } finally {
      process.umask(umask);
    }
    if (gid !== null) chownSync(this.socketPath, -1, gid);
    chmodSync(this.socketPath, mode);
    server.on("error", (err) => this.log.error({ err: err.message }, "socket server error"));
    this.server = server;
  }

  private serve(sock: Socket): void {
    let buf = "";
    let answered = false;
    const timer = setTimeout(
      () => reply({ ok: false, error: { code: "timeout", message: "no request line" } }),
      REQUEST_READ_MS,
    );
    const reply = (r: Response) => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      sock.end(`${JSON.stringify(r)}\n`);
    };
    sock.setEncoding("utf8");
    sock.on("error", (err) => this.log.debug({ err: err.message }, "client connection error"));
    sock.on("data", (chunk: string) => {
      if (answered) return;
      buf += chunk;
      const nl = buf.indexOf("\n");
      if (nl < 0) {
        if (buf.length > MAX_REQUEST_BYTES)
          reply({ ok: false, error: { code: "too_large", message: "request too large" } });
        return;
      }
      clearTimeout(timer);
      let parsed: unknown;
      try {
        parsed = JSON.parse(buf.slice(0, nl));
      } catch {
        reply({ ok: false, error: { code: "bad_request", message: "the request is not JSON" } });
        return;
      }
      const req = Request.safeParse(parsed);
      if (!req.success) {
        reply({
          ok: false,
          error: {
            code: "bad_request",
            message: req.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
          },
        });
        return;
      }
      this.handle(req.data).then(reply, (err: unknown) => {
        const body = errorBody(err);
        if (body.code === "internal") this.log.error({ err }, "request failed");
        reply({ ok: false, error: body });
      });
    });
  }

  private async handle(req: z.output<typeof Request>): Promise<Response> {
    switch (req.op) {
      case "status":
        return { ok: true, status: this.status() };
      case "ping":
        return this.ping(req.peer, req.timeoutMs);
      case "netcheck":
        return this.netcheck();
      case "up":
        return this.exclusive(async () => ({
          ok: true,
          status: await this.up(req.prefs, req.authKey, req.waitMs),
        }));
      case "set":
        return this.exclusive(async () => ({ ok: true, status: await this.set(req.prefs, req.waitMs) }));
      case "down":
        return this.exclusive(async () => {
          await this.down(false);
          return { ok: true, status: this.status() };
        });
      case "logout":
        return this.exclusive(async () => ({ ok: true, loggedOut: await this.logout() }));
    }
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.serial.run(fn);
  }

  // ---- prefs ---------------------------------------------------------------------

  private readPrefs(): PrefsFile {
    if (!existsSync(this.prefsPath)) return { version: 1, prefs: null, wantRunning: false };
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(this.prefsPath, "utf8"));
    } catch (err) {
      throw new DaemonError("bad_state", `cannot read ${this.prefsPath}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const parsed = PrefsFile.safeParse(raw);
    if (!parsed.success)
      throw new DaemonError("bad_state", `${this.prefsPath} is not valid: ${parsed.error.message}`);
    return parsed.data;
  }

  private writePrefs(p: PrefsFile): void {
    const tmp = `${this.prefsPath}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(p, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, this.prefsPath);
  }

  // ---- up, down, logout ------------------------------------------------------------

  private async up(prefs: UpPrefs, authKey: string | undefined, waitMs: number): Promise<Status> {
    if (prefs.exitNode && prefs.userspace) {
      throw new DaemonError("bad_request", "--exit-node needs TUN mode (the host's traffic goes through it)");
    }
    if (this.stopping) throw new DaemonError("stopping", "the daemon is shutting down");
    if (this.session) {
      const same = JSON.stringify(this.session.prefs) === JSON.stringify(prefs);
      // The same `up` again (with or without the key) changes nothing: keep the connections.
      if (same && this.session.ready && !this.session.error) return this.status();
      await this.down(true);
    }
    const identity = NodeIdentity.loadOrCreate(this.opts.stateDir);
    const control = new ControlClient({ baseUrl: prefs.loginServer, key: identity });
    const register = registration(prefs);
    // Register once here, so that a bad key or an unreachable server is the answer
    // to this `up`; the engine then re-registers the known key on each connection.
    try {
      await withTimeout(
        control.register({ ...register, ...(authKey ? { preAuthKey: authKey } : {}) }),
        CONTROL_CALL_MS,
        `registering at ${prefs.loginServer}`,
      );
    } catch (err) {
      const e = controlFailure("the registration", prefs.loginServer, err);
      if (!authKey && e.code === "invalid_preauth_key") {
        throw new DaemonError(
          "needs_auth_key",
          `this node is not registered at ${prefs.loginServer}: give --auth-key`,
          { cause: err },
        );
      }
      throw e;
    }
    const native = prefs.userspace ? null : this.openNative(prefs, identity.privateKeyBytes());
    const udp = native ? native.udp : await this.openUdp(prefs.port);
    let device: PacketDevice | null = native?.device ?? null;
    if (!prefs.userspace && !native) {
      try {
        device = TunPacketDevice.open(prefs.tun, (err) =>
          this.log.warn({ err: err.message }, "TUN device error"),
        );
      } catch (err) {
        udp.close();
        throw err;
      }
    }
    let session: Session | null = null;
    const engine = nodeEngine({
      udp,
      baseUrl: prefs.loginServer,
      privateKey: identity.privateKeyBytes(),
      register: () => session?.register ?? register,
      packets: device ?? undefined,
      native: native ? { engine: native.engine, hooks: native.hooks } : undefined,
      log: (msg, detail) => this.log.info(detail ?? {}, msg),
    });
    native?.onWake(() => engine.kick());
    native?.onIoError((message) => {
      this.log.error({ err: message }, "the native data plane stopped");
      if (session) session.error = `the native data plane stopped: ${message}`;
    });
    session = {
      prefs,
      register,
      engine,
      device,
      dataplane: device ? (native ? "native" : "wasm") : null,
      router: device ? new SubnetRouter(device.name, this.log) : null,
      userspaceRouter: device ? null : new UserspaceRouter(this.log),
      served: [],
      peerRoutes: device ? new PeerRoutes(device.name, this.log) : null,
      exit: device ? new ExitRoutes(device.name, this.log) : null,
      exitError: null,
      dns: device ? { resolver: null, system: false, error: null } : null,
      bypass: null,
      stopForwards: [],
      ready: false,
      error: null,
    };
    this.session = session;
    this.writePrefs({ version: 1, prefs, wantRunning: true });
    device?.onPackets((p) => engine.sendPackets(p));
    for (const port of prefs.userspace ? prefs.forwardTcp : []) {
      session.stopForwards.push(engine.listenTcp(port, (c) => this.forward(c, port)));
    }
    const current = session;
    const started = engine.start().then(async () => {
      const self = engine.netmap!.node;
      if (device) {
        await device.configure(self.addresses);
        await this.startDns(current);
      }
      current.ready = true;
      // Serve what the map approves and route what peers serve, now and whenever it changes.
      engine.onStatus(() => void this.syncRoutes(current));
      await this.syncRoutes(current);
      this.log.info({ name: self.name, addresses: self.addresses }, "up");
    });
    started.catch((err: unknown) => {
      // Brought down (down, another up, logout, the daemon stopping) before the first map: no error.
      if (this.session !== current) return;
      current.error = err instanceof Error ? err.message : String(err);
      this.log.error({ err: current.error }, "the node engine stopped");
    });
    void engine.done.then((s) => {
      if (s.phase === "failed") current.error = s.error.message;
      if (s.phase === "ended") current.error = `the control server ended this node: ${s.reason}`;
    });
    try {
      await withTimeout(started, waitMs, `waiting for the first map from ${prefs.loginServer}`);
    } catch (err) {
      if (err instanceof DaemonError) throw err; // timed out: the engine keeps trying
      throw new DaemonError("engine", (err as Error).message, { cause: err });
    }
    return this.status();
  }

  /**
   * TUN mode's data plane: the native one (gateway/dataplane) when asked for
   * or, by default, when its addon loads here; the WASM engine otherwise. The
   * log says which and why. Null: use the WASM engine.
   */
  private openNative(prefs: UpPrefs, privateKey: Uint8Array): NativeDataplane | null {
    if (prefs.dataplane === "wasm") {
      this.log.info({ dataplane: "wasm" }, "data plane: WASM engine (asked for with --dataplane wasm)");
      return null;
    }
    const avail = nativeAvailable();
    if (!avail.ok) {
      if (prefs.dataplane === "native")
        throw new DaemonError("dataplane", `the native data plane cannot run here: ${avail.reason}`);
      this.log.info(
        { dataplane: "wasm", reason: avail.reason },
        `data plane: WASM engine (the native one cannot run here: ${avail.reason})`,
      );
      return null;
    }
    let dp: NativeDataplane;
    try {
      dp = new NativeDataplane(privateKey, prefs.tun, prefs.port);
    } catch (err) {
      const msg = (err as Error).message;
      if (prefs.port === 0 || !msg.includes("bind UDP port"))
        throw new HostError(`TUN mode is not available: ${msg} (or use --userspace)`, { cause: err });
      this.log.warn({ port: prefs.port, err: msg }, "UDP port taken; using any free port");
      dp = new NativeDataplane(privateKey, prefs.tun, 0);
    }
    this.log.info(
      { dataplane: "native", tun: dp.device.name, port: dp.udp.port, tso: dp.tso },
      "data plane: native (TUN and UDP batched on their own threads)",
    );
    return dp;
  }

  /** The UDP socket for direct paths: on `port`, or any free port when that one is taken. */
  private async openUdp(port: number): Promise<UdpSocket> {
    try {
      return await openUdpSocket(port);
    } catch (err) {
      if (port === 0 || !(err instanceof UdpBindError)) throw err;
      this.log.warn({ port, err: err.message }, "UDP port taken; using any free port");
      return openUdpSocket(0);
    }
  }

  /**
   * TUN mode: the subnet routes this node serves and the peers' routes it
   * accepts, as the map and the prefs say now. Failures land in status (the
   * router and the route table keep the error), so they are not thrown.
   */
  private async syncRoutes(s: Session): Promise<void> {
    const map = s.engine.netmap;
    if (!map || !s.ready || this.session !== s) return;
    if (s.userspaceRouter) {
      const routes = subnetRoutes(map.node.advertisedRoutes, map.node.approvedRoutes);
      if (routes.join() !== s.served.join()) {
        s.engine.serveRoutes(routes, s.userspaceRouter);
        s.served = routes;
        this.log.info({ routes }, "subnet routes served in userspace");
      }
      return;
    }
    await Promise.all([
      s.router?.update([
        ...subnetRoutes(map.node.advertisedRoutes, map.node.approvedRoutes),
        ...plainPeerAddresses(map),
      ]),
      s.peerRoutes?.update(s.prefs.acceptRoutes ? acceptedRoutes(map) : []),
      this.syncExit(s),
    ]).catch(() => undefined);
    this.syncDns(s);
  }

  /** TUN mode: MagicDNS on the node's IPv4 address, port 53 (a failure lands in status). */
  private async startDns(s: Session): Promise<void> {
    const own = s.engine.netmap?.node.addresses.map((a) => a.split("/")[0]!) ?? [];
    const v4 = own.find((a) => !a.includes(":"));
    if (!s.dns || !v4) return;
    const resolver = new MagicDnsResolver({
      log: this.log,
      lookup: (name) => {
        const map = s.engine.netmap;
        if (!map) return undefined;
        const domain = map.dns.domain.replace(/\.$/, "").toLowerCase();
        for (const n of [map.node, ...map.peers]) {
          if (n.name === name || n.dnsName.replace(/\.$/, "").toLowerCase() === name) {
            const addrs = n.addresses.map((a) => a.split("/")[0]!);
            return { v4: addrs.filter((a) => !a.includes(":")), v6: addrs.filter((a) => a.includes(":")) };
          }
        }
        return domain && (name === domain || name.endsWith(`.${domain}`)) ? null : undefined;
      },
      upstream: () => {
        const set = s.engine.netmap?.dns.nameservers ?? [];
        return set.length ? set : this.resolvConf.original().filter((a) => !own.includes(a));
      },
      local: () => [...own, "127.0.0.1", "::1"],
    });
    try {
      await resolver.listen(v4, 53);
      s.dns.resolver = resolver;
    } catch (err) {
      s.dns.error = `MagicDNS could not listen on ${v4}:53: ${(err as Error).message}`;
      this.log.warn({ err: s.dns.error }, "no MagicDNS");
    }
  }

  private stopDns(s: Session): void {
    s.dns?.resolver?.close();
    if (s.dns?.system) this.resolvConf.restore();
    if (s.dns) s.dns = { resolver: null, system: false, error: null };
  }

  /** --accept-dns: resolv.conf points at MagicDNS while it runs, and is put back otherwise. */
  private syncDns(s: Session): void {
    const d = s.dns;
    const map = s.engine.netmap;
    if (!d || !map) return;
    try {
      if (s.prefs.acceptDns && d.resolver) {
        const ip = d.resolver.address!.replace(/:53$/, "");
        const domains = [map.dns.domain, ...(map.dns.searchDomains ?? [])]
          .filter(Boolean)
          .map((x) => x.replace(/\.$/, ""));
        this.resolvConf.apply(ip, domains);
        d.system = true;
      } else if (d.system) {
        this.resolvConf.restore();
        d.system = false;
      }
      if (d.resolver) d.error = null;
    } catch (err) {
      d.error = `could not configure the system's resolver: ${(err as Error).message}`;
    }
  }

  /**
   * TUN mode with --exit-node: the engine gives the exit node the default
   * routes, and the host routes the internet into the device, except the
   * daemon's own destinations (control server, relays, peers' endpoints).
   */
  private async syncExit(s: Session): Promise<void> {
    const map = s.engine.netmap;
    if (!map || !s.exit) return;
    const want = s.prefs.exitNode;
    let families: { v4: boolean; v6: boolean } | null = null;
    try {
      s.engine.setExitNode(want);
      const name = s.engine.exitNode?.name;
      const exit = want ? map.peers.find((p) => p.name === name) : undefined;
      if (exit) {
        families = { v4: exit.allowedIPs.includes("0.0.0.0/0"), v6: exit.allowedIPs.includes("::/0") };
        if (!exit.online) throw new DaemonError("exit_node", `the exit node ${exit.name} is offline`);
      }
      s.exitError = null;
    } catch (err) {
      s.exitError = err instanceof Error ? err.message : String(err);
      families = null;
      s.engine.setExitNode(null);
    }
    await s.exit.update(families, families ? await this.bypass(s, map) : []);
  }

  /** The control server's, relays' and peers' endpoint addresses (names looked up at most once a minute). */
  private async bypass(s: Session, map: FullMap): Promise<string[]> {
    const hosts = [new URL(s.prefs.loginServer).hostname];
    for (const r of Object.values(map.relayMap.regions)) {
      for (const n of r.nodes) hosts.push(n.hostName, new URL(n.url).hostname);
    }
    const key = [...new Set(hosts)].sort().join(",");
    if (!s.bypass || s.bypass.hosts !== key || Date.now() - s.bypass.at > 60_000) {
      s.bypass = { hosts: key, addresses: await addressesOf(key.split(",")), at: Date.now() };
    }
    const endpoints: string[] = [];
    for (const p of map.peers) {
      for (const e of p.endpoints) {
        const a = parseUdpAddr(e);
        if (a) endpoints.push(a.address);
      }
    }
    return [...new Set([...s.bypass.addresses, ...endpoints])];
  }

  /**
   * Change some prefs of the running node: what the control server keeps
   * (hostname, advertised routes) by registering the known key again, which
   * creates no machine; the rest here. Persisted only once the server took
   * them. Answers when the map shows them, or after `waitMs` with whatever
   * it shows.
   */
  private async set(changes: SetPrefs, waitMs: number): Promise<Status> {
    if (this.stopping) throw new DaemonError("stopping", "the daemon is shutting down");
    const s = this.session;
    if (!s) {
      throw this.readPrefs().prefs
        ? new DaemonError(
            "not_running",
            "the node is down: trellis up brings it up, with the settings it is given",
          )
        : new DaemonError("not_logged_in", "this node is not logged in (run trellis up first)");
    }
    const given = Object.fromEntries(Object.entries(changes).filter(([, v]) => v !== undefined));
    const prefs = UpPrefs.parse({ ...s.prefs, ...given });
    if (prefs.exitNode && prefs.userspace) {
      throw new DaemonError("bad_request", "--exit-node needs TUN mode (the host's traffic goes through it)");
    }
    const register = registration(prefs);
    if (JSON.stringify(register) !== JSON.stringify(s.register)) {
      const control = new ControlClient({
        baseUrl: prefs.loginServer,
        key: NodeIdentity.loadOrCreate(this.opts.stateDir),
      });
      try {
        await withTimeout(control.register(register), CONTROL_CALL_MS, `registering at ${prefs.loginServer}`);
      } catch (err) {
        throw controlFailure("the new settings", prefs.loginServer, err);
      }
      s.register = register;
    }
    s.prefs = prefs;
    this.writePrefs({ version: 1, prefs, wantRunning: true });
    this.log.info({ changes: given }, "settings changed");
    await this.syncRoutes(s);
    if (s.ready) await this.mapShows(s, register, waitMs);
    return this.status();
  }

  /** Wait up to `ms` for the map to carry what the node registered (the server sends it on every change). */
  private mapShows(s: Session, reg: RegisterRequest, ms: number): Promise<void> {
    const shows = () => {
      const node = s.engine.netmap?.node;
      return (
        node?.hostname === reg.hostname &&
        JSON.stringify(node.advertisedRoutes) === JSON.stringify(reg.routableIPs)
      );
    };
    return new Promise((resolve) => {
      if (shows()) return resolve();
      const done = () => {
        clearTimeout(timer);
        off();
        resolve();
      };
      const timer = setTimeout(done, ms);
      const off = s.engine.onStatus(() => shows() && done());
    });
  }

  /** Userspace mode: carry a tailnet TCP connection to the same port on 127.0.0.1. */
  private forward(c: TcpConnection, port: number): void {
    forwardToSocket(c, connect({ host: "127.0.0.1", port }), (err) =>
      this.log.debug({ port, err: String(err) }, "forwarded connection ended"),
    );
  }

  /** Stop the engine and remove the TUN device (its addresses and routes go with it). */
  private async down(restarting: boolean): Promise<void> {
    const s = this.session;
    this.session = null;
    if (!restarting) {
      const saved = this.readPrefs();
      if (saved.wantRunning) this.writePrefs({ ...saved, wantRunning: false });
    }
    if (!s) return;
    for (const stop of s.stopForwards) stop();
    s.engine.close();
    s.userspaceRouter?.close();
    try {
      this.stopDns(s);
      await s.exit?.close();
      await s.router?.close();
    } finally {
      await s.device?.close();
    }
    this.log.info({ restarting }, "down");
  }

  private async logout(): Promise<boolean> {
    const saved = this.readPrefs();
    const server = saved.prefs?.loginServer ?? this.session?.prefs.loginServer;
    if (!server) throw new DaemonError("not_logged_in", "this node is not logged in (run trellis up first)");
    await this.down(false);
    const identity = NodeIdentity.loadOrCreate(this.opts.stateDir);
    const control = new ControlClient({ baseUrl: server, key: identity });
    try {
      await withTimeout(control.logout(), CONTROL_CALL_MS, `logging out at ${server}`);
    } catch (err) {
      // A key the server no longer knows is logged out already; anything else is retried by the user.
      if (!(err instanceof ControlRequestError && err.status === 401))
        throw controlFailure("the logout", server, err);
      this.log.info({ code: err.code }, "the control server no longer knew this node");
    }
    // Forget the registration: the next `up` makes a new key and needs an auth key.
    rmSync(identity.keyPath, { force: true });
    this.writePrefs({ version: 1, prefs: null, wantRunning: false });
    return true;
  }

  private async ping(peer: string, timeoutMs: number): Promise<Response> {
    const s = this.session;
    if (!s?.ready) throw new DaemonError("not_running", "the node is not up (run trellis up)");
    try {
      const r = await s.engine.ping(peer, { timeoutMs });
      return { ok: true, ping: { ...r, via: s.device ? "engine" : "stack" } };
    } catch (err) {
      throw new DaemonError(
        err instanceof Error && err.name === "ResolveError" ? "unknown_peer" : "ping",
        (err as Error).message,
        {
          cause: err,
        },
      );
    }
  }

  private async netcheck(): Promise<Response> {
    const s = this.session;
    if (!s?.ready) throw new DaemonError("not_running", "the node is not up (run trellis up)");
    return { ok: true, netcheck: await s.engine.netcheck() };
  }

  status(): Status {
    const s = this.session;
    const saved = this.readPrefs();
    const base: Status = {
      state: "stopped",
      loginServer: s?.prefs.loginServer ?? saved.prefs?.loginServer ?? null,
      mode: null,
      tun: null,
      dataplane: null,
      control: null,
      error: null,
      self: null,
      advertisedRoutes: [],
      approvedRoutes: [],
      prefs: s?.prefs ?? saved.prefs,
      acceptedRoutes: null,
      dns: null,
      exitNode: null,
      forwarding: null,
      relay: { region: null, connected: false, latencyMs: null },
      udp: null,
      peers: [],
      drops: {},
    };
    if (!s) return base;
    const st = s.engine.status();
    const node = s.engine.netmap?.node;
    return {
      ...base,
      state: s.error ? "failed" : s.ready ? "running" : "starting",
      mode: s.device ? "tun" : "userspace",
      tun: s.device?.name ?? null,
      dataplane: s.dataplane,
      control: st.control,
      error: s.error,
      self: st.self ? { name: st.self.name, dnsName: st.self.dnsName, addresses: st.self.addresses } : null,
      advertisedRoutes: node?.advertisedRoutes ?? [],
      approvedRoutes: node?.approvedRoutes ?? [],
      acceptedRoutes: s.peerRoutes ? { routes: [...s.peerRoutes.routes], error: s.peerRoutes.error } : null,
      dns: s.dns
        ? { resolver: s.dns.resolver?.address ?? null, systemConfigured: s.dns.system, error: s.dns.error }
        : null,
      exitNode: s.prefs.exitNode
        ? {
            name: s.engine.exitNode?.name ?? s.prefs.exitNode,
            routing: s.exit?.routing ?? false,
            error: s.exitError ?? s.exit?.error ?? (s.exit ? null : "an exit node needs TUN mode"),
          }
        : null,
      forwarding: s.router
        ? { routes: [...s.router.routes], error: s.router.error }
        : s.userspaceRouter
          ? { routes: s.served, error: null }
          : null,
      relay: st.relay,
      udp: st.udp,
      peers: st.peers.map((p) => ({
        name: p.name,
        dnsName: p.dnsName,
        addresses: p.addresses,
        online: p.online,
        path: p.path,
        pathDetail: p.pathDetail,
        rttMs: p.rttMs,
        rxBytes: p.rxBytes,
        txBytes: p.txBytes,
        lastHandshake: p.lastHandshake,
      })),
      drops: st.drops,
    };
  }

  /** Take the node down, stop listening and remove the socket and pid file. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const errors: unknown[] = [];
      await this.serial.run(async () => undefined);
      const s = this.session;
      this.session = null;
      if (s) {
        for (const stop of s.stopForwards) stop();
        s.engine.close();
        // The prefs keep wantRunning: a restarted daemon brings the node up again.
        try {
          this.stopDns(s);
        } catch (err) {
          errors.push(err);
        }
        if (s.exit) await s.exit.close().catch((err: unknown) => errors.push(err));
        if (s.router) await s.router.close().catch((err: unknown) => errors.push(err));
        if (s.device) await s.device.close().catch((err: unknown) => errors.push(err));
      }
      await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
      rmSync(this.socketPath, { force: true });
      rmSync(this.pidPath, { force: true });
      if (errors.length) throw new AggregateError(errors, "the daemon did not stop cleanly");
    })();
    return this.stopping;
  }
}

/** Whether something accepts connections on the socket at `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(path);
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once("connect", () => done(true));
    sock.once("error", () => done(false));
  });
}
