// The node engine, shared by the browser tab and the gateway: it keeps this
// node's map (the control client's watcher), turns it into WireGuard peers,
// a packet filter and addresses for the WASM engine, owns the paths to each
// peer — the DERP relay always, a WebRTC data channel when one can be made —
// and gives apps what they need: name resolution, ping, TCP connections,
// UDP, and per-peer status.
//
// Paths work as Tailscale's magicsock: WireGuard sees one endpoint handle
// per peer and never chooses; the engine sends each datagram on the peer's
// best working path. Between two nodes with UDP sockets (gateways) that is
// a UDP path found by STUN and simultaneous pings (paths/udp-paths.ts);
// with a browser on either end, a WebRTC data channel, which carries traffic
// once it is open and a probe has come back over it. Either gives traffic
// back to the relay when its probes stop returning — the WireGuard session,
// and every TCP connection inside it, carries on either way. Browser-safe:
// platform parts are injected.
import { bytesToHex } from "@noble/hashes/utils.js";
import { decodeKey, PLAIN_PEERS_SEEN_MAX, plainPeerOnline } from "@trellis/proto";
import { addrBytes, addrFromBytes, formatAddr, parseAddr } from "@trellis/proto/ip";
import type { FullMap, Peer, SignalMessage } from "@trellis/proto/node";
import type { EngineOutput, EngineStats, WireGuardEngine } from "@trellis/wasm";
import type { ControlClient } from "../control/client";
import type { MapWatcher, WatchState } from "../control/watch";
import { resolveHost, type Resolved } from "../netmap/resolve";
import type { SocketFactory } from "../paths/derp/client";
import { BATCH, DatagramBatch, splitBatch } from "../paths/batch";
import { EndpointTable } from "../paths/endpoints";
import { RelayPaths } from "../paths/relay";
import { isDisco, parseUdpAddr, type UdpAddr } from "../paths/disco";
import { openSignal, sealSignal, type RtcSignal } from "../paths/signalling";
import type { UdpSocket } from "../paths/udp";
import { UdpPaths, type StunResult } from "../paths/udp-paths";
import type { DirectLink, DirectLinkFactory } from "../paths/webrtc";
import { echoRequest, parseEchoReply } from "./icmp";
import { ConnectionError, TcpConnection } from "./sockets";

/**
 * Where an engine without a userspace stack delivers: the host's IP stack,
 * through a TUN device (gateways). The engine hands it the admitted packets
 * of one turn at once; they are views into the WASM engine's output buffer,
 * valid only during the call, so `write` must copy or consume them before it
 * returns. Packets from the host come back through `NodeEngine.sendPackets`.
 */
export interface HostPackets {
  write(packets: Uint8Array[]): void;
}

export interface EnginePlatform {
  /**
   * The WASM engine for this private key: delivering to its userspace stack,
   * or, when `packets` is given, built without one (`{ stack: false }`).
   */
  createWasmEngine(privateKey: Uint8Array): WireGuardEngine;
  /** The host's IP stack (a TUN device); absent: the userspace stack is the host. */
  packets?: HostPackets;
  /** WebSockets for the relay. */
  socketFactory: SocketFactory;
  /** WebRTC data channels; absent: no WebRTC paths. */
  directLinks?: DirectLinkFactory;
  /**
   * The node's UDP socket, bound (gateways); direct paths to peers that
   * publish UDP endpoints go over it. The engine closes it.
   */
  udp?: UdpSocket;
  /**
   * A native data plane under the engine (gateways; gateway/dataplane): it
   * reads the host's packets and the UDP socket itself and sends to each
   * peer's direct UDP path on its own, so the engine tells it which path
   * that is (a trusted one, or none), learns which peers it carried traffic
   * for (to keep their paths' heartbeats going), and names the ICMP
   * identifier of its own pings (their answers come back to it).
   */
  dataplane?: NativeHooks;
}

/** What the engine tells a native data plane (see EnginePlatform.dataplane). */
export interface NativeHooks {
  setDirect(endpoint: number, addr: UdpAddr | null): void;
  takeActive(): number[];
  setEchoIdent(ident: number): void;
}

export interface NodeEngineOptions {
  control: ControlClient;
  /** The node's private key (the one `control` signs with); it stays in this engine. */
  privateKey: Uint8Array;
  platform: EnginePlatform;
  /** Before each connection to the control server (a browser tab registers its key here). */
  prepare?: () => Promise<void>;
  /** Failed control connections in a row before giving up (default: never). */
  maxAttempts?: number;
  /** Where the engine reports what it is doing (defaults to nothing). */
  log?: (msg: string, detail?: Record<string, unknown>) => void;
}

export type PathKind = "direct" | "relay" | "none";

export interface PeerStatus {
  id: string;
  name: string;
  dnsName: string;
  addresses: string[];
  os: string;
  online: boolean;
  /** Which path carries traffic to it now. */
  path: PathKind;
  /** Why that path, for people ("data channel open, 12 ms", "direct path stalled", …). */
  pathDetail: string;
  /** Round trip of the direct path's last probe, or of the last ping, in ms. */
  rttMs: number | null;
  rxBytes: number;
  txBytes: number;
  /** Wall-clock ms of the last completed handshake; null: none yet. */
  lastHandshake: number | null;
}

export interface EngineStatus {
  control: WatchState["phase"];
  self: { name: string; dnsName: string; addresses: string[]; key: string } | null;
  relay: { region: number | null; connected: boolean; latencyMs: number | null };
  /** The UDP socket for direct paths (null: none on this node) and the endpoints published. */
  udp: { port: number; endpoints: string[] } | null;
  peers: PeerStatus[];
  /** Packets dropped, by reason (only reasons that occurred). */
  drops: Record<string, number>;
}

/** What `netcheck` found: how this node reaches the internet and the relays. */
export interface NetcheckReport {
  /** Whether any STUN server answered over UDP (null: this node has no UDP socket). */
  udp: boolean | null;
  /** The local UDP port. */
  port: number | null;
  /** Our address and port as each STUN server saw them. */
  stun: StunResult[];
  /**
   * Whether the NAT maps our socket to different public ports for different
   * destinations (hard NAT: direct UDP then mostly fails); null when fewer
   * than two STUN servers at different addresses answered.
   */
  mappingVariesByDestIP: boolean | null;
  /** The endpoints this node publishes. */
  endpoints: string[];
  /** Round trip to each relay region's DERP server, in ms (null: unreachable). */
  relayLatencyMs: Record<string, number | null>;
  homeRegion: number | null;
}

export interface PingResult {
  rttMs: number;
  path: PathKind;
  peer: string | null;
  address: string;
}

/** Marker bytes of the direct path's own probes (WireGuard messages start with 1–4). */
const PROBE = 0xfe;
const PROBE_REPLY = 0xfd;
/** Probe the direct path this often while it is open. */
const PROBE_EVERY_MS = 2000;
/** A direct path with nothing received for this long is stalled: the relay takes over. */
const STALL_AFTER_MS = 6500;
/** A direct path not open this long after starting is given up. */
const OPEN_WITHIN_MS = 15_000;
const RETRY_MIN_MS = 5_000;
// At least once a minute while traffic flows (a direct attempt starts only when a packet goes out).
const RETRY_MAX_MS = 60_000;
/** Packets from the host waiting for the next turn beyond this many are dropped (`host_queue_full`). */
export const MAX_HOST_PACKETS = 4096;
/**
 * Endpoint handles of plain WireGuard peers' UDP sources carry this bit
 * (peers' own handles never do: EndpointTable's handles stay below 2^31).
 */
const PLAIN_BIT = 0x80000000;
/** UDP sources remembered for plain WireGuard peers (their handshakes come before any proof). */
const PLAIN_SOURCES = 1024;
/** WireGuard's message type 3. */
const COOKIE_REPLY = 3;
/** How often at most a gateway reports its plain peers' handshakes (well inside PLAIN_PEER_ONLINE_MS with WireGuard's 2-minute rekey). */
const PLAIN_REPORT_MS = 30_000;
/** How often a gateway looks for plain peers' first handshakes, reported at once. */
const PLAIN_FIRST_REPORT_MS = 2_000;

interface Direct {
  link: DirectLink;
  session: string;
  startedAt: number;
  open: boolean;
  /** A probe came back: the channel carries traffic (unless stalled). */
  verified: boolean;
  lastRx: number;
  probes: Map<number, number>;
  nextProbe: number;
  rttMs: number | null;
  /** Datagrams of this turn for the channel, sent together when the turn ends. */
  out: DatagramBatch;
}

interface PeerState {
  peer: Peer;
  key: Uint8Array;
  handle: number;
  allowed: string;
  direct: Direct | null;
  /** When a direct path may be tried again. */
  retryAt: number;
  retryMs: number;
  lastHello: number;
  /**
   * Candidates that came before their offer (each signal is its own request,
   * and they may overtake one another): held briefly for the answering side.
   */
  early: { s: RtcSignal; at: number }[];
  rttMs: number | null;
  whyNotDirect: string;
}

/** Early candidates a peer may have waiting, and for how long. */
const EARLY_MAX = 32;
const EARLY_MS = 5000;

// Keys are looked up by their hex form for every relayed packet: a table-driven encoder.
const hex = bytesToHex;
const random = () => hex(globalThis.crypto.getRandomValues(new Uint8Array(8)));

/** One end of a forwarded flow. */
export interface FlowEnd {
  address: string;
  port: number;
}

/**
 * Userspace subnet routing (`serveRoutes`): how a node without a kernel
 * interface reaches the real targets behind its routes. Node-only (real
 * sockets); the engine only says what the tailnet asked for.
 */
export interface RouteForwarder {
  /**
   * A client opened TCP to `to`: connect to it. Resolve once connected (the
   * client's handshake completes only then), reject when it cannot be
   * reached (the client gets a reset).
   */
  tcp(to: FlowEnd, from: FlowEnd): Promise<ForwardedTcp>;
  /** A UDP datagram for `to`; `reply` sends an answer back to the client. */
  udp(to: FlowEnd, from: FlowEnd, data: Uint8Array, reply: (data: Uint8Array) => void): void;
  /** An echo request for `to`: resolve true when it answered. */
  ping(to: string, from: string): Promise<boolean>;
}

/** The real side of a forwarded TCP connection. */
export interface ForwardedTcp {
  /** The tailnet side is established: carry bytes both ways until either ends. */
  attach(c: TcpConnection): void;
  /** The tailnet side never came up: close the real side. */
  abort(): void;
}

export class EngineError extends Error {
  override readonly name = "EngineError";
}

export class NodeEngine {
  private readonly wasm: WireGuardEngine;
  private readonly relay: RelayPaths;
  private readonly udp: UdpPaths | null;
  /** The exit node in use (its node key), or how it was named until the map has it. */
  private exit: { want: string; key: string | null } | null = null;
  private readonly handles = new EndpointTable<string>(65536);
  private readonly peers = new Map<string, PeerState>();
  private readonly byHandle = new Map<number, PeerState>();
  private map: FullMap | null = null;
  private filterJson = "";
  private addresses = "";
  private watcher: MapWatcher | null = null;
  private phase: WatchState["phase"] = "connecting";
  private readonly ourKey: string;
  private inbound: { data: Uint8Array; endpoint: number }[] = [];
  /** Peers with datagrams waiting for their direct path (see BATCH). */
  private batched = new Set<PeerState>();
  /** Packets dropped outside WASM, by reason. */
  private localDrops: Record<string, number> = {};
  private scheduled = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private probeTimer: ReturnType<typeof setInterval> | null = null;
  private readonly conns = new Map<number, TcpConnection>();
  private readonly connecting = new Map<
    number,
    { resolve: (c: TcpConnection) => void; reject: (e: Error) => void; conn: TcpConnection }
  >();
  private readonly pings = new Map<
    string,
    { resolve: (r: PingResult) => void; reject: (e: Error) => void; sentAt: number; res: Resolved }
  >();
  private readonly tcpListeners = new Map<number, (handle: number, from: string, port: number) => void>();
  private readonly udpSockets = new Map<number, (from: string, port: number, data: Uint8Array) => void>();
  private pingSeq = 0;
  /** Packets from the host (sendPackets) for the next turn. */
  private fromHost: Uint8Array[] = [];
  /** ICMP identifier of this engine's own echo requests when it has no stack. */
  private readonly hostPingIdent = (Math.random() * 0x10000) & 0xffff;
  /** The direct path each endpoint handle has in the native data plane ("" for none). */
  private readonly nativeRoutes = new Map<number, string>();
  /** Plain WireGuard peers' UDP sources (handles: PLAIN_BIT | the table's handle). */
  private readonly plainSources = new EndpointTable<UdpAddr>(PLAIN_SOURCES);
  /** Source handles a plain peer's session uses, with that peer's key (hex); native paths set for them. */
  private readonly plainRoutes = new Map<number, { peer: string; addr: UdpAddr }>();
  /** This node's own plain WireGuard peers in the map (none: unproven datagrams are dropped, as before). */
  private plainPeers = 0;
  /**
   * Plain WireGuard peers of other gateways, by their gateway's node id:
   * not WireGuard peers of this node, their addresses are routed to the
   * gateway (it forwards and filters for them).
   */
  private throughGateway = new Map<string, Peer[]>();
  /** Own plain peers' handshake times (wall-clock ms) the control server has, by key. */
  private readonly plainSeen = new Map<string, number>();
  /** When the next full report of plain peers' handshakes may go, the next look for first ones, and whether one is on its way. */
  private plainReportAt = 0;
  private plainCheckAt = 0;
  private plainReporting = false;
  private closed = false;
  /** Rejects what `start` returned, until the first map (a close before it must not leave it pending). */
  private abortStart: ((e: Error) => void) | null = null;
  private readonly listeners = new Set<(s: EngineStatus) => void>();
  private statusQueued = false;
  private readonly log: (msg: string, detail?: Record<string, unknown>) => void;

  constructor(private readonly opts: NodeEngineOptions) {
    this.wasm = opts.platform.createWasmEngine(opts.privateKey);
    this.ourKey = hex(this.wasm.publicKey);
    this.log = opts.log ?? (() => undefined);
    opts.platform.dataplane?.setEchoIdent(this.hostPingIdent);
    this.relay = new RelayPaths({
      privateKey: opts.privateKey,
      socketFactory: opts.platform.socketFactory,
      onPacket: (src, data) => this.fromRelay(src, data),
      onHomeChange: (region) => this.homeChanged(region),
    });
    const socket = opts.platform.udp;
    this.udp = socket
      ? new UdpPaths({
          socket,
          privateKey: opts.privateKey,
          publicKey: this.wasm.publicKey,
          sendRelay: (peer, data) => {
            const st = this.peers.get(`nodekey:${hex(peer)}`);
            this.relay.send(peer, data, st?.peer.homeRegion ?? null);
          },
          onDatagram: (keyHex, data) => {
            const st = this.peers.get(`nodekey:${keyHex}`);
            if (!st) return;
            this.inbound.push({ data, endpoint: st.handle });
            this.kick();
          },
          onUnprovenDatagram: (data, from) => this.fromUnproven(data, from),
          onEndpoints: () => this.reportEndpoints(),
          onChange: () => {
            this.syncNative();
            this.changed();
          },
          log: this.log,
        })
      : null;
  }

  /** Connect to the control server and keep the map; resolves once the first map is applied. */
  start(): Promise<void> {
    if (this.watcher) throw new EngineError("the engine is already started");
    let first: () => void = () => undefined;
    let failed: (e: Error) => void = () => undefined;
    const ready = new Promise<void>((resolve, reject) => {
      first = resolve;
      failed = reject;
    });
    this.abortStart = failed;
    void ready.then(
      () => (this.abortStart = null),
      () => (this.abortStart = null),
    );
    this.watcher = this.opts.control.watchMap(
      {
        map: (map) => {
          this.apply(map);
          first();
        },
        signal: (s) => this.onSignal(s),
        state: (s) => {
          this.phase = s.phase;
          if (s.phase === "failed") failed(s.error);
          if (s.phase === "ended") failed(new EngineError(`the control server ended this node: ${s.reason}`));
          this.changed();
        },
      },
      { prepare: this.opts.prepare, maxAttempts: this.opts.maxAttempts },
    );
    this.probeTimer = setInterval(() => this.probeTick(), 500);
    return ready;
  }

  /** How the watcher ended (for hosts that want to react to `ended`/`failed`). */
  get done(): Promise<WatchState> {
    if (!this.watcher) throw new EngineError("the engine is not started");
    return this.watcher.done;
  }

  /** The current map, once one arrived. */
  get netmap(): FullMap | null {
    return this.map;
  }

  // ---- the map ----------------------------------------------------------------

  private apply(map: FullMap): void {
    this.map = map;
    const addrs = map.node.addresses.map((a) => a.split("/")[0]!).join(",");
    if (addrs !== this.addresses) {
      this.addresses = addrs;
      this.wasm.setAddresses(addrs.split(","));
    }
    const filter = JSON.stringify(map.packetFilter);
    if (filter !== this.filterJson) {
      this.filterJson = filter;
      this.wasm.setFilter(filter);
    }
    this.relay.setRelayMap(map.relayMap);
    this.udp?.setStunServers(this.stunServers());
    const through = new Map<string, Peer[]>();
    for (const p of map.peers) {
      if (!this.viaGateway(p, map)) continue;
      const list = through.get(p.gateway!);
      if (list) list.push(p);
      else through.set(p.gateway!, [p]);
    }
    this.throughGateway = through;
    const seen = new Set<string>();
    for (const p of map.peers) {
      if (this.viaGateway(p, map)) continue;
      seen.add(p.key);
      let st = this.peers.get(p.key);
      if (!st) {
        const key = decodeKey("nodekey", p.key);
        const handle = this.handles.handle(p.key, p.key);
        st = {
          peer: p,
          key,
          handle,
          allowed: "",
          direct: null,
          retryAt: 0,
          retryMs: RETRY_MIN_MS,
          lastHello: 0,
          early: [],
          rttMs: null,
          whyNotDirect: this.opts.platform.directLinks ? "no traffic yet" : "no WebRTC on this node",
        };
        this.peers.set(p.key, st);
        this.byHandle.set(handle, st);
      }
      st.peer = p;
      // A plain WireGuard peer speaks no disco: no UDP path finding, no WebRTC (see fromUnproven).
      if (p.isWireGuardOnly) this.udp?.removePeer(st.key);
      else this.udp?.setPeer(st.key, p.name, p.endpoints);
      this.setAllowed(st);
    }
    this.plainPeers = map.peers.filter((p) => p.isWireGuardOnly && !this.viaGateway(p, map)).length;
    for (const key of this.plainSeen.keys()) if (!seen.has(key)) this.plainSeen.delete(key);
    for (const [key, st] of this.peers) {
      if (seen.has(key)) continue;
      this.wasm.removePeer(st.key);
      this.udp?.removePeer(st.key);
      this.forgetPlainRoutes(hex(st.key));
      st.direct?.link.close();
      this.peers.delete(key);
      this.byHandle.delete(st.handle);
    }
    this.kick();
    this.changed();
  }

  /**
   * A peer's allowed IPs for WireGuard: its addresses and subnet routes, and
   * its exit routes (0.0.0.0/0, ::/0) only when it is the exit node in use,
   * so that at most one peer owns the default routes (as Tailscale does).
   */
  private setAllowed(st: PeerState): void {
    const exit = this.exit?.key === st.peer.key;
    const ips = exit
      ? [...st.peer.allowedIPs]
      : st.peer.allowedIPs.filter((r) => r !== "0.0.0.0/0" && r !== "::/0");
    for (const p of this.throughGateway.get(st.peer.id) ?? []) ips.push(...p.addresses);
    const allowed = ips.join(",");
    if (st.allowed === allowed) return;
    st.allowed = allowed;
    // A plain WireGuard peer has no endpoint until its handshake arrives (WireGuard learns it then).
    this.wasm.upsertPeer({
      publicKey: st.key,
      allowedIps: ips,
      endpoint: st.peer.isWireGuardOnly ? undefined : st.handle,
    });
  }

  // ---- plain WireGuard peers ----------------------------------------------------------

  /**
   * Whether `p` is another gateway's plain WireGuard peer, reached through
   * that gateway (which the map lists too). A plain peer without a gateway
   * named is this node's own (servers before `gateway` gave it to its
   * gateway alone).
   */
  private viaGateway(p: Peer, map: FullMap): boolean {
    return !!p.isWireGuardOnly && p.gateway !== undefined && p.gateway !== map.node.id;
  }

  /**
   * Tell the control server when this gateway's plain peers last completed
   * a handshake (their presence: they stream no map), at most every
   * PLAIN_REPORT_MS and only what moved.
   */
  private reportPlainPeers(now: number): void {
    if (this.plainPeers === 0 || this.plainReporting || now < this.plainCheckAt) return;
    this.plainCheckAt = now + PLAIN_FIRST_REPORT_MS;
    // A peer's first handshake goes out within seconds (it just connected);
    // later ones wait for the next report, at most every PLAIN_REPORT_MS.
    const due = now >= this.plainReportAt;
    const peers: { key: string; lastHandshake: string }[] = [];
    for (const p of this.wasm.stats().peers) {
      const key = `nodekey:${p.public_key}`;
      const had = this.plainSeen.get(key);
      if (p.last_handshake_ms <= (had ?? 0) || (had !== undefined && !due)) continue;
      if (!this.peers.get(key)?.peer.isWireGuardOnly) continue;
      peers.push({ key, lastHandshake: new Date(p.last_handshake_ms).toISOString() });
      if (peers.length === PLAIN_PEERS_SEEN_MAX) break;
    }
    if (peers.length === 0) return;
    if (due) this.plainReportAt = now + PLAIN_REPORT_MS;
    this.plainReporting = true;
    this.opts.control
      .plainPeersSeen({ peers })
      .then(
        () => {
          for (const p of peers) this.plainSeen.set(p.key, Date.parse(p.lastHandshake));
        },
        (err: unknown) => this.log("plain peers' handshakes not reported", { err: String(err) }),
      )
      .finally(() => {
        this.plainReporting = false;
      });
  }

  /** The gateway state of a plain peer reached through it. */
  private gatewayOf(p: Peer): PeerState | undefined {
    if (!this.map || !this.viaGateway(p, this.map)) return undefined;
    const gw = this.map.peers.find((q) => q.id === p.gateway);
    return gw && this.peers.get(gw.key);
  }

  /**
   * A WireGuard datagram from a UDP address no peer proved. With plain
   * WireGuard peers in the map it goes to WireGuard under a handle of its
   * source address, as WireGuard takes datagrams from anywhere: a handshake
   * it authenticates makes that address the peer's endpoint. Whose it was is
   * checked when the first answer goes there (sendPlain).
   */
  private fromUnproven(data: Uint8Array, from: UdpAddr): void {
    if (this.plainPeers === 0) {
      this.localDrops.udp_unknown_source = (this.localDrops.udp_unknown_source ?? 0) + 1;
      return;
    }
    const handle = (PLAIN_BIT | this.plainSources.handle(`${from.address}:${from.port}`, from)) >>> 0;
    this.inbound.push({ data, endpoint: handle });
    this.kick();
  }

  /**
   * A datagram WireGuard sends to a plain peer's source address. The first
   * one to an address makes sure the peer whose endpoint it became is a
   * plain WireGuard peer — a Trellis peer's path must be proven by disco, so
   * one that handshook from elsewhere is put back on its own handle — and
   * then hands the address to the native data plane, which carries the
   * peer's traffic from then on.
   */
  private sendPlain(handle: number, data: Uint8Array): void {
    // An address in use keeps its handle even if a flood of strangers pushed it out of the table.
    const addr = this.plainRoutes.get(handle)?.addr ?? this.plainSources.get(handle & ~PLAIN_BIT);
    if (!addr) {
      this.localDrops.plain_source_gone = (this.localDrops.plain_source_gone ?? 0) + 1;
      return;
    }
    // A cookie reply (under handshake load) goes back to whoever sent the handshake, as WireGuard's does.
    if (!this.plainRoutes.has(handle) && data[0] !== COOKIE_REPLY) {
      const owner = this.wasm.stats().peers.find((p) => p.endpoint === handle);
      const st = owner && this.peers.get(`nodekey:${owner.public_key}`);
      if (!owner || !st?.peer.isWireGuardOnly) {
        if (st)
          this.wasm.upsertPeer({ publicKey: st.key, allowedIps: st.allowed.split(","), endpoint: st.handle });
        this.localDrops.udp_unknown_source = (this.localDrops.udp_unknown_source ?? 0) + 1;
        return;
      }
      // The peer moved (a new address, a new NAT mapping): its old addresses are forgotten.
      this.forgetPlainRoutes(owner.public_key);
      this.plainRoutes.set(handle, { peer: owner.public_key, addr });
      this.opts.platform.dataplane?.setDirect(handle, addr);
      this.log("plain WireGuard peer", { peer: st.peer.name, addr: `${addr.address}:${addr.port}` });
      this.changed();
    }
    this.opts.platform.udp?.send(data, addr);
  }

  /** Forget every source address of plain peer `keyHex` (and its native paths). */
  private forgetPlainRoutes(keyHex: string): void {
    for (const [h, r] of this.plainRoutes) {
      if (r.peer !== keyHex) continue;
      this.plainRoutes.delete(h);
      this.opts.platform.dataplane?.setDirect(h, null);
    }
  }

  /** The address a plain peer's session uses now, if its handshake came. */
  private plainAddr(st: PeerState): UdpAddr | null {
    const k = hex(st.key);
    let found: UdpAddr | null = null;
    for (const r of this.plainRoutes.values()) if (r.peer === k) found = r.addr;
    return found;
  }

  /**
   * Send traffic for addresses outside the tailnet through `host` (a peer's
   * name or address that offers itself as an exit node and is approved), or
   * through none (null). Throws when the map has no such exit node.
   */
  setExitNode(host: string | null): void {
    if (host === null) {
      this.exit = null;
    } else {
      const peer = this.resolve(host).peer;
      if (!peer) throw new EngineError(`${host} is not a machine of this tailnet`);
      if (!peer.allowedIPs.includes("0.0.0.0/0") && !peer.allowedIPs.includes("::/0")) {
        throw new EngineError(
          `${peer.name} is not an exit node (it does not offer one, or it is not approved)`,
        );
      }
      this.exit = { want: host, key: peer.key };
    }
    for (const st of this.peers.values()) this.setAllowed(st);
    this.changed();
  }

  /** The exit node in use: the peer's name and whether it still offers the exit routes. */
  get exitNode(): { name: string; offered: boolean } | null {
    if (!this.exit?.key) return null;
    const st = this.peers.get(this.exit.key);
    if (!st) return { name: this.exit.want, offered: false };
    return {
      name: st.peer.name,
      offered: st.peer.allowedIPs.includes("0.0.0.0/0") || st.peer.allowedIPs.includes("::/0"),
    };
  }

  private homeChanged(region: number | null): void {
    this.log("relay home", { region, connected: this.relay.connected });
    if (region !== null && this.relay.connected) this.reportEndpoints();
    this.changed();
  }

  /** Tell the control server where peers reach us: our UDP endpoints and home relay. */
  private reportEndpoints(): void {
    const home = this.relay.connected ? this.relay.home : null;
    const endpoints = this.udp?.endpoints() ?? [];
    if (home === null && endpoints.length === 0) return;
    this.opts.control
      .updateEndpoints({ endpoints, ...(home !== null ? { homeRegion: home } : {}) })
      .catch((err: unknown) => this.log("could not report endpoints", { err: String(err) }));
  }

  /** The relays' STUN servers, as UDP addresses (host names are resolved when sent to). */
  private stunServers(): UdpAddr[] {
    const out: UdpAddr[] = [];
    for (const r of Object.values(this.map?.relayMap.regions ?? {})) {
      for (const n of r.nodes) if (n.stunPort > 0) out.push({ address: n.hostName, port: n.stunPort });
    }
    return out;
  }

  // ---- packets in and out ---------------------------------------------------------

  private fromRelay(src: Uint8Array, data: Uint8Array): void {
    const st = this.peers.get(`nodekey:${hex(src)}`);
    if (!st) return; // not a peer of ours (the relay vouches for the key, the map does not)
    if (isDisco(data)) {
      this.udp?.fromRelay(src, data);
      return;
    }
    this.inbound.push({ data, endpoint: st.handle });
    this.kick();
  }

  private fromDirect(st: PeerState, d: Direct, data: Uint8Array): void {
    const now = Date.now();
    // A stalled path that answers again carries traffic again (status must say so).
    if (d.verified && !this.usable(d, now)) {
      this.log("direct path recovered", { peer: st.peer.name });
      this.changed();
    }
    d.lastRx = now;
    if (data[0] === PROBE && data.length === 5) {
      const reply = data.slice();
      reply[0] = PROBE_REPLY;
      d.link.send(reply);
      return;
    }
    if (data[0] === PROBE_REPLY && data.length === 5) {
      const seq = new DataView(data.buffer, data.byteOffset).getUint32(1);
      const sent = d.probes.get(seq);
      if (sent !== undefined) {
        d.probes.delete(seq);
        d.rttMs = now - sent;
      }
      if (!d.verified) {
        d.verified = true;
        st.retryMs = RETRY_MIN_MS;
        this.log("direct path verified", { peer: st.peer.name, rttMs: d.rttMs });
        this.changed();
      }
      return;
    }
    if (data[0] === BATCH) {
      const ok = splitBatch(data, (d) => this.inbound.push({ data: d, endpoint: st.handle }));
      if (!ok) this.localDrops.malformed_batch = (this.localDrops.malformed_batch ?? 0) + 1;
      this.kick();
      return;
    }
    this.inbound.push({ data, endpoint: st.handle });
    this.kick();
  }

  /** Whether the peer's direct path carries traffic now. */
  private usable(d: Direct | null, now = Date.now()): boolean {
    return d !== null && d.open && d.verified && now - d.lastRx < STALL_AFTER_MS;
  }

  private sendDatagram(st: PeerState, data: Uint8Array): void {
    const now = Date.now();
    const udp = this.udp;
    if (udp?.capable(st.key)) {
      if (udp.send(st.key, data)) return;
      this.relay.send(st.key, data, st.peer.homeRegion);
      if (st.peer.online) udp.wantDirect(st.key);
      return;
    }
    const d = st.direct;
    if (d && this.usable(d, now)) {
      if (!d.out.fits(data)) this.flushDirect(st, d);
      d.out.push(data);
      this.batched.add(st);
      return;
    }
    this.relay.send(st.key, data, st.peer.homeRegion);
    if (!st.direct && now >= st.retryAt) this.startDirect(st, now);
  }

  /** Send the datagrams queued for `d` as one message; the relay takes them if the channel cannot. */
  private flushDirect(st: PeerState, d: Direct): void {
    const b = d.out.take();
    if (!b) return;
    if (st.direct === d && d.link.send(b.message)) return;
    for (const p of b.datagrams) this.relay.send(st.key, p, st.peer.homeRegion);
  }

  private flushBatched(): void {
    for (const st of this.batched) if (st.direct) this.flushDirect(st, st.direct);
    this.batched.clear();
  }

  /** Run the WASM engine soon (once per turn, however many reasons). */
  kick(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    queueMicrotask(() => this.pump());
  }

  private pump(): void {
    this.scheduled = false;
    if (this.closed) return;
    const now = Date.now();
    const batch = this.inbound;
    this.inbound = [];
    let out = batch.length ? this.wasm.receive(batch, now) : this.wasm.poll(now);
    this.handle(out);
    if (this.fromHost.length) {
      const packets = this.fromHost;
      this.fromHost = [];
      this.handle(this.wasm.send(packets, now));
    }
    // Writers may have room now; what they queue goes out in the same turn.
    let again = false;
    for (const c of this.conns.values()) {
      if (c.waiting) {
        c.flush();
        again = true;
      }
    }
    if (again) {
      out = this.wasm.poll(now);
      this.handle(out);
    }
    this.flushBatched();
    if (this.timer) clearTimeout(this.timer);
    const at = this.wasm.nextPoll(now);
    this.timer = setTimeout(() => this.kick(), Math.max(1, Math.min(at - Date.now(), 1000)));
  }

  private handle(out: EngineOutput[]): void {
    let toHost: Uint8Array[] | null = null;
    // A connection's last data, its end and the release of its handle come in one batch.
    for (const o of out) if (o.kind === "tcp-closed") this.conns.get(o.handle)?.releasedByStack();
    for (const o of out) {
      switch (o.kind) {
        case "datagram": {
          if (o.endpoint >= PLAIN_BIT) {
            this.sendPlain(o.endpoint, o.data);
            break;
          }
          const st = this.byHandle.get(o.endpoint);
          if (st && !st.peer.isWireGuardOnly) this.sendDatagram(st, o.data);
          break;
        }
        case "packet":
          if (this.pings.size > 0 && this.ownEchoReply(o.data)) break;
          (toHost ??= []).push(o.data);
          break;
        case "tcp-connected": {
          const p = this.connecting.get(o.handle);
          if (p) {
            this.connecting.delete(o.handle);
            this.conns.set(o.handle, p.conn);
            p.resolve(p.conn);
          }
          break;
        }
        case "tcp-accepted": {
          const accept = this.tcpListeners.get(o.listener);
          // Accepted by the stack as the listener stopped: nobody will read it, so it is reset.
          if (accept) accept(o.handle, formatAddr(addrFromBytes(o.from)!), o.port);
          else this.wasm.tcpAbort(o.handle);
          break;
        }
        case "tcp-data":
          this.conns.get(o.handle)?.data(o.data);
          break;
        case "tcp-eof":
          this.conns.get(o.handle)?.eof();
          break;
        case "tcp-closed": {
          const p = this.connecting.get(o.handle);
          if (p) {
            this.connecting.delete(o.handle);
            p.conn.closedBy(true, false);
            p.reject(
              new ConnectionError(
                `could not connect to ${p.conn.remote.address}:${p.conn.remote.port}: refused, unreachable or not allowed by the policy`,
                "refused",
              ),
            );
          }
          this.conns.get(o.handle)?.closedBy(o.reset, true);
          this.conns.delete(o.handle);
          break;
        }
        case "ping-reply":
          this.pingAnswered(o.ident, o.seq);
          break;
        case "udp":
          this.udpSockets.get(o.handle)?.(formatAddr(addrFromBytes(o.from)!), o.port, o.data.slice());
          break;
        case "forward-tcp":
          this.forwardTcp(o);
          break;
        case "forward-udp":
        case "forward-ping":
          this.forwardOther(o);
          break;
        default:
          break;
      }
    }
    if (toHost) this.opts.platform.packets?.write(toHost);
  }

  private pingAnswered(ident: number, seq: number): boolean {
    const key = `${ident}/${seq}`;
    const p = this.pings.get(key);
    if (!p) return false;
    this.pings.delete(key);
    const rttMs = Date.now() - p.sentAt;
    const st = p.res.peer ? this.peers.get(p.res.peer.key) : undefined;
    if (st) st.rttMs = rttMs;
    const gw = p.res.peer && !st ? this.gatewayOf(p.res.peer) : undefined;
    p.resolve({
      rttMs,
      path: st ? this.pathOf(st) : gw ? this.pathOf(gw) : "relay",
      peer: p.res.peer?.name ?? null,
      address: p.res.text,
    });
    return true;
  }

  /** Whether `pkt` answers one of this engine's own echo requests (then the host never sees it). */
  private ownEchoReply(pkt: Uint8Array): boolean {
    const r = parseEchoReply(pkt);
    return r !== null && r.ident === this.hostPingIdent && this.pingAnswered(r.ident, r.seq);
  }

  /**
   * IP packets from the host (a TUN device) for peers, sent on the next turn.
   * Only for an engine whose platform has `packets`; beyond MAX_HOST_PACKETS
   * waiting, packets are dropped and counted (`host_queue_full`).
   */
  sendPackets(packets: readonly Uint8Array[]): void {
    if (!this.opts.platform.packets) throw new EngineError("this engine has no host packet path");
    if (this.closed) return;
    const room = MAX_HOST_PACKETS - this.fromHost.length;
    for (let i = 0; i < packets.length; i++) {
      if (i < room) this.fromHost.push(packets[i]!);
      else this.localDrops.host_queue_full = (this.localDrops.host_queue_full ?? 0) + 1;
    }
    this.kick();
  }

  // ---- direct paths -------------------------------------------------------------

  private offerer(st: PeerState): boolean {
    return this.ourKey < hex(st.key);
  }

  private iceServers(): { urls: string[] }[] {
    const urls: string[] = [];
    for (const r of Object.values(this.map?.relayMap.regions ?? {})) {
      for (const n of r.nodes) if (n.stunPort > 0) urls.push(`stun:${n.hostName}:${n.stunPort}`);
    }
    return urls.length ? [{ urls }] : [];
  }

  // Runs for every packet relayed while no direct path is being tried: the
  // session id is drawn only when it is used.
  private startDirect(st: PeerState, now: number): void {
    const factory = this.opts.platform.directLinks;
    if (!factory || this.closed) return;
    if (!st.peer.online) {
      st.whyNotDirect = "the peer is offline";
      return;
    }
    if (!this.offerer(st)) {
      // The other side offers; ask it to (at most every few seconds).
      if (now - st.lastHello > RETRY_MIN_MS) {
        st.lastHello = now;
        this.sendSignal(st, { kind: "hello", session: random() });
      }
      return;
    }
    this.openLink(st, random(), true, now);
  }

  private openLink(st: PeerState, session: string, offerer: boolean, now: number): Direct | null {
    const factory = this.opts.platform.directLinks;
    if (!factory) return null;
    // Replaced, not failed: its close must not count against the peer's retry backoff.
    const replaced = st.direct;
    st.direct = null;
    replaced?.link.close();
    const d: Direct = {
      link: null as unknown as DirectLink,
      session,
      startedAt: now,
      open: false,
      verified: false,
      lastRx: now,
      probes: new Map(),
      nextProbe: now,
      rttMs: null,
      out: new DatagramBatch(),
    };
    st.direct = d;
    st.whyNotDirect = "setting up a data channel";
    d.link = factory(
      { offerer, session, iceServers: this.iceServers() },
      {
        signal: (s) => this.sendSignal(st, s),
        open: () => {
          d.open = true;
          d.lastRx = Date.now();
          this.log("data channel open", { peer: st.peer.name });
          this.probe(d);
          this.changed();
        },
        message: (data) => this.fromDirect(st, d, data),
        close: (reason) => {
          if (st.direct !== d) return;
          st.direct = null;
          st.whyNotDirect = `direct path closed: ${reason}`;
          st.retryAt = Date.now() + st.retryMs;
          st.retryMs = Math.min(RETRY_MAX_MS, st.retryMs * 2);
          this.log("direct path closed", { peer: st.peer.name, reason });
          this.changed();
        },
      },
    );
    this.changed();
    return d;
  }

  private probe(d: Direct): void {
    const seq = (Math.random() * 0xffffffff) >>> 0;
    const b = new Uint8Array(5);
    b[0] = PROBE;
    new DataView(b.buffer).setUint32(1, seq);
    const now = Date.now();
    d.probes.set(seq, now);
    if (d.probes.size > 16) d.probes.delete(d.probes.keys().next().value!);
    d.nextProbe = now + PROBE_EVERY_MS;
    d.link.send(b);
  }

  /** Probes, stalls, and attempts that never opened. */
  /** Each peer's trusted UDP path to the native data plane; its traffic back to the paths' heartbeats. */
  private syncNative(): void {
    const dp = this.opts.platform.dataplane;
    if (!dp || !this.udp) return;
    for (const h of dp.takeActive()) {
      const st = this.byHandle.get(h);
      if (st) this.udp.touch(st.key);
    }
    for (const st of this.peers.values()) {
      const r = this.udp.route(st.key);
      const key = r ? `${r.address}:${r.port}` : "";
      if (this.nativeRoutes.get(st.handle) === key) continue;
      this.nativeRoutes.set(st.handle, key);
      dp.setDirect(st.handle, r);
    }
    for (const h of this.nativeRoutes.keys()) {
      if (!this.byHandle.has(h)) {
        this.nativeRoutes.delete(h);
        dp.setDirect(h, null);
      }
    }
  }

  private probeTick(): void {
    this.syncNative();
    this.udp?.tick();
    const now = Date.now();
    this.reportPlainPeers(now);
    for (const st of this.peers.values()) {
      const d = st.direct;
      if (!d) continue;
      if (!d.open) {
        if (now - d.startedAt > OPEN_WITHIN_MS) {
          st.whyNotDirect = "no direct connection could be made (WebRTC blocked or no route)";
          d.link.close();
        }
        continue;
      }
      const wasUsable = d.verified && now - d.lastRx - 500 < STALL_AFTER_MS;
      if (now >= d.nextProbe) this.probe(d);
      if (wasUsable && !this.usable(d, now)) this.changed();
    }
  }

  private sendSignal(st: PeerState, s: RtcSignal): void {
    let sealed: string;
    try {
      sealed = sealSignal(s, this.opts.privateKey, st.key);
    } catch (err) {
      this.log("signal not sent", { peer: st.peer.name, err: String(err) });
      return;
    }
    this.opts.control.signal({ to: st.peer.key, sealed }).catch((err: unknown) => {
      this.log("signal refused", { peer: st.peer.name, err: String(err) });
      // Without its offer or answer the attempt cannot go on; one lost candidate of several is not fatal.
      if (st.direct?.session === s.session && s.kind === "description") {
        st.whyNotDirect = `signalling failed: ${err instanceof Error ? err.message : String(err)}`;
        st.direct.link.close();
      }
    });
  }

  private onSignal(m: SignalMessage): void {
    const st = this.peers.get(m.from);
    if (!st) return;
    let s: RtcSignal;
    try {
      s = openSignal(m.sealed, this.opts.privateKey, st.key);
    } catch (err) {
      this.log("signal refused", { from: st.peer.name, err: String(err) });
      return;
    }
    const now = Date.now();
    switch (s.kind) {
      case "hello":
        // The peer has no data channel with us (it reloaded, or its side failed): a channel of
        // ours that is open but no longer carries anything is dead too, so offer anew.
        if (this.offerer(st) && !this.usable(st.direct, now)) this.openLink(st, random(), true, now);
        return;
      case "description":
        if (s.type === "offer") {
          if (this.offerer(st)) return; // the other side does not offer to us
          const d = this.openLink(st, s.session, false, now);
          d?.link.signal(s);
          const early = st.early;
          st.early = [];
          for (const e of early)
            if (d && e.s.session === s.session && now - e.at <= EARLY_MS) d.link.signal(e.s);
          return;
        }
        break;
      case "candidate":
        if (st.direct?.session !== s.session && !this.offerer(st)) {
          // Perhaps ahead of its offer: kept for a while, the oldest dropped first.
          st.early = st.early.filter((e) => now - e.at <= EARLY_MS);
          if (st.early.length >= EARLY_MAX) st.early.shift();
          st.early.push({ s, at: now });
          return;
        }
        break;
      default:
        break;
    }
    if (st.direct?.session === s.session) st.direct.link.signal(s);
  }

  // ---- what apps use ---------------------------------------------------------------

  private requireMap(): FullMap {
    if (!this.map) throw new EngineError("this node has no map yet (not connected)");
    return this.map;
  }

  /** A machine's name or an address → where to connect. */
  resolve(host: string): Resolved {
    return resolveHost(this.requireMap(), host);
  }

  /**
   * ICMP echo through the tunnel; rejects after `timeoutMs` without a reply.
   * With a userspace stack the stack pings; without one (the host owns the
   * addresses) the engine sends an echo request from this node's own address
   * and takes the reply out of the packets bound for the host.
   */
  ping(host: string, opts: { timeoutMs?: number } = {}): Promise<PingResult> {
    const res = this.resolve(host);
    const seq = (this.pingSeq = (this.pingSeq + 1) & 0xffff);
    const payload = new TextEncoder().encode("trellis ping");
    let ident: number;
    if (this.opts.platform.packets) {
      const src = this.ownAddress(res.bytes.length === 16);
      ident = this.hostPingIdent;
      this.fromHost.push(echoRequest(src, res.bytes, ident, seq, payload));
    } else {
      ident = this.wasm.ping(res.bytes, seq, payload);
    }
    const key = `${ident}/${seq}`;
    this.kick();
    return new Promise<PingResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pings.delete(key);
        reject(
          new ConnectionError(`no reply from ${host} within ${(opts.timeoutMs ?? 5000) / 1000} s`, "timeout"),
        );
      }, opts.timeoutMs ?? 5000);
      this.pings.set(key, {
        res,
        sentAt: Date.now(),
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  /** This node's own address of one family, as bytes. */
  private ownAddress(v6: boolean): Uint8Array {
    for (const a of this.requireMap().node.addresses) {
      const addr = parseAddr(a.split("/")[0]!);
      if (addr && (addr.v === 6) === v6) return addrBytes(addr);
    }
    throw new EngineError(`this node has no IPv${v6 ? 6 : 4} address`);
  }

  /** A TCP connection through the tailnet; resolves once established. */
  connectTcp(host: string, port: number, opts: { timeoutMs?: number } = {}): Promise<TcpConnection> {
    const res = this.resolve(host);
    const handle = this.wasm.tcpConnect(res.bytes, port);
    const conn = new TcpConnection(handle, this.tcpHost, { address: res.text, port });
    this.kick();
    return new Promise<TcpConnection>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (!this.connecting.has(handle)) return;
        this.connecting.delete(handle);
        this.wasm.tcpAbort(handle);
        reject(
          new ConnectionError(
            `no answer from ${host}:${port} within ${(opts.timeoutMs ?? 15_000) / 1000} s`,
            "timeout",
          ),
        );
      }, opts.timeoutMs ?? 15_000);
      this.connecting.set(handle, {
        conn,
        resolve: (c) => {
          clearTimeout(timer);
          resolve(c);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  private forwarder: RouteForwarder | null = null;

  /**
   * Serve these subnet routes through the userspace stack (CIDR prefixes;
   * empty: none): flows to their addresses that the packet filter admits go
   * to `forwarder`. For a node without a TUN device (`--userspace`).
   */
  serveRoutes(prefixes: readonly string[], forwarder: RouteForwarder): void {
    this.wasm.setRoutes(prefixes);
    this.forwarder = prefixes.length ? forwarder : null;
  }

  private forwardTcp(o: Extract<EngineOutput, { kind: "forward-tcp" }>): void {
    const from = { address: formatAddr(addrFromBytes(o.from)!), port: o.fromPort };
    const to = { address: formatAddr(addrFromBytes(o.to)!), port: o.toPort };
    const answer = (ok: boolean): number => {
      if (this.closed) return 0;
      try {
        return this.wasm.tcpDialResult(o.id, ok);
      } catch (err) {
        // The dial was forgotten (unanswered too long) or the socket table is full.
        this.log("forwarded connection dropped", { to: `${to.address}:${to.port}`, err: String(err) });
        return 0;
      } finally {
        this.kick();
      }
    };
    if (!this.forwarder) {
      answer(false);
      return;
    }
    this.forwarder.tcp(to, from).then(
      (real) => {
        const h = answer(true);
        if (!h) return real.abort();
        const conn = new TcpConnection(h, this.tcpHost, from);
        this.connecting.set(h, {
          conn,
          resolve: (c) => {
            this.conns.set(h, c);
            real.attach(c);
          },
          reject: () => real.abort(),
        });
      },
      (err: unknown) => {
        this.log("forwarded connection refused", { to: `${to.address}:${to.port}`, err: String(err) });
        answer(false);
      },
    );
  }

  private forwardOther(o: Extract<EngineOutput, { kind: "forward-udp" | "forward-ping" }>): void {
    const f = this.forwarder;
    if (!f) return;
    const from = o.from.slice();
    const to = o.to.slice();
    const fromText = formatAddr(addrFromBytes(from)!);
    const toText = formatAddr(addrFromBytes(to)!);
    const send = (what: string, fn: () => void) => {
      if (this.closed) return;
      try {
        fn();
        this.kick();
      } catch (err) {
        // The route stopped being served meanwhile.
        this.log(`forwarded ${what} answer dropped`, { to: toText, err: String(err) });
      }
    };
    if (o.kind === "forward-udp") {
      const { fromPort, toPort } = o;
      f.udp({ address: toText, port: toPort }, { address: fromText, port: fromPort }, o.data.slice(), (d) =>
        send("UDP", () => this.wasm.udpForwardReply(to, toPort, from, fromPort, d)),
      );
    } else {
      const { ident, seq } = o;
      const data = o.data.slice();
      void f.ping(toText, fromText).then((ok) => {
        if (ok) send("ping", () => this.wasm.pingForwardReply(to, from, ident, seq, data));
      });
    }
  }

  /** Accept TCP connections to `port` of this node; returns a function that stops listening. */
  listenTcp(port: number, onConnection: (c: TcpConnection) => void): () => void {
    const listener = this.wasm.tcpListen(port);
    const accept = (handle: number, from: string, fromPort: number) => {
      const c = new TcpConnection(handle, this.tcpHost, { address: from, port: fromPort });
      this.conns.set(handle, c);
      onConnection(c);
    };
    this.tcpListeners.set(listener, accept);
    return () => {
      this.tcpListeners.delete(listener);
      this.wasm.tcpClose(listener);
    };
  }

  /** A UDP socket on `port` (0: any); datagrams arrive through `onMessage`. */
  bindUdp(
    port: number,
    onMessage: (from: string, port: number, data: Uint8Array) => void,
  ): { port: number; send(host: string, port: number, data: Uint8Array): void; close(): void } {
    const handle = this.wasm.udpBind(port);
    this.udpSockets.set(handle, onMessage);
    return {
      port,
      send: (host, p, data) => {
        this.wasm.udpSend(handle, this.resolve(host).bytes, p, data);
        this.kick();
      },
      close: () => {
        this.udpSockets.delete(handle);
        this.wasm.udpClose(handle);
      },
    };
  }

  private readonly tcpHost = {
    send: (h: number, data: Uint8Array) => this.wasm.tcpSend(h, data),
    pause: (h: number, paused: boolean) => this.wasm.tcpPause(h, paused),
    close: (h: number) => this.wasm.tcpClose(h),
    abort: (h: number) => {
      this.conns.delete(h);
      this.wasm.tcpAbort(h);
    },
    kick: () => this.kick(),
  };

  // ---- status ----------------------------------------------------------------------

  private pathOf(st: PeerState): PathKind {
    if (st.peer.isWireGuardOnly) return this.plainAddr(st) ? "direct" : "none";
    if (this.usable(st.direct) || this.udp?.usable(st.key)) return "direct";
    return this.relay.connected ? "relay" : "none";
  }

  private pathDetail(st: PeerState, stats: EngineStats["peers"][number] | undefined): string {
    if (st.peer.isWireGuardOnly) {
      const a = this.plainAddr(st);
      return a
        ? `UDP ${a.address}:${a.port} (plain WireGuard peer)`
        : "plain WireGuard peer: no handshake from it yet";
    }
    const d = st.direct;
    const now = Date.now();
    if (this.usable(d, now)) return `WebRTC data channel${d!.rttMs !== null ? `, ${d!.rttMs} ms` : ""}`;
    const relay = this.relay.connected
      ? `relay region ${st.peer.homeRegion ?? this.relay.home}`
      : "relay not connected";
    if (this.udp?.capable(st.key)) {
      const u = this.udp.describe(st.key);
      if ("addr" in u) return `UDP ${u.addr}${u.rttMs !== null ? `, ${u.rttMs} ms` : ""}`;
      return `${relay}: ${u.why}`;
    }
    if (d?.open && d.verified)
      return `${relay}: direct path stalled (no answer for ${Math.round((now - d.lastRx) / 1000)} s)`;
    if (d) return `${relay}: ${st.whyNotDirect}`;
    if (!stats?.has_session) return `${relay}: no traffic yet`;
    return `${relay}: ${st.whyNotDirect}`;
  }

  /** What the engine knows now. */
  status(): EngineStatus {
    const stats = this.wasm.stats();
    const byKey = new Map(stats.peers.map((p) => [p.public_key, p]));
    const drops: Record<string, number> = {};
    for (const [k, v] of Object.entries(stats.drops)) if (v > 0) drops[k] = v;
    for (const [k, v] of Object.entries(this.localDrops)) drops[k] = (drops[k] ?? 0) + v;
    for (const [k, v] of Object.entries(this.udp?.drops ?? {})) drops[k] = (drops[k] ?? 0) + v;
    const home = this.relay.home;
    return {
      control: this.phase,
      self: this.map
        ? {
            name: this.map.node.name,
            dnsName: this.map.node.dnsName,
            addresses: this.map.node.addresses,
            key: this.map.node.key,
          }
        : null,
      relay: {
        region: home,
        connected: this.relay.connected,
        latencyMs: home === null ? null : (this.relay.latency.get(home) ?? null),
      },
      udp: this.udp ? { port: this.udp.port, endpoints: this.udp.endpoints() } : null,
      peers: [
        ...[...this.peers.values()].map((st) => {
          const s = byKey.get(hex(st.key));
          return {
            id: st.peer.id,
            name: st.peer.name,
            dnsName: st.peer.dnsName,
            addresses: st.peer.addresses,
            os: st.peer.os,
            // A plain peer has no presence but its handshakes with this gateway.
            online: st.peer.isWireGuardOnly
              ? plainPeerOnline(s && s.last_handshake_ms > 0 ? new Date(s.last_handshake_ms) : null)
              : st.peer.online,
            path: this.pathOf(st),
            pathDetail: this.pathDetail(st, s),
            rttMs: this.udpRtt(st) ?? st.direct?.rttMs ?? st.rttMs,
            rxBytes: s?.rx_bytes ?? 0,
            txBytes: s?.tx_bytes ?? 0,
            lastHandshake: s && s.last_handshake_ms > 0 ? s.last_handshake_ms : null,
          };
        }),
        ...this.viaGatewayStatus(),
      ],
      drops,
    };
  }

  /**
   * Other gateways' plain WireGuard peers: on their gateway's path. Their
   * traffic is counted in the gateway's session, not apart.
   */
  private viaGatewayStatus(): PeerStatus[] {
    const out: PeerStatus[] = [];
    for (const list of this.throughGateway.values()) {
      for (const p of list) {
        const gw = this.gatewayOf(p);
        out.push({
          id: p.id,
          name: p.name,
          dnsName: p.dnsName,
          addresses: p.addresses,
          os: p.os,
          online: plainPeerOnline(p.lastSeen),
          path: gw ? this.pathOf(gw) : "none",
          pathDetail: gw
            ? `plain WireGuard peer, through ${gw.peer.name}`
            : "plain WireGuard peer: its gateway is not in the map",
          rttMs: null,
          rxBytes: 0,
          txBytes: 0,
          lastHandshake: null,
        });
      }
    }
    return out;
  }

  /** Status changes (throttled to a few per second). */
  onStatus(fn: (s: EngineStatus) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private changed(): void {
    if (this.statusQueued || this.listeners.size === 0) return;
    this.statusQueued = true;
    setTimeout(() => {
      this.statusQueued = false;
      if (this.closed) return;
      const s = this.status();
      for (const fn of this.listeners) fn(s);
    }, 100);
  }

  private udpRtt(st: PeerState): number | null {
    const u = this.udp?.describe(st.key);
    return u && "addr" in u ? u.rttMs : null;
  }

  /**
   * How this node reaches the internet and the relays: STUN from its UDP
   * socket to every relay's STUN server, and a round trip to each region.
   */
  async netcheck(): Promise<NetcheckReport> {
    this.requireMap();
    const [stun, latencies] = await Promise.all([
      this.udp ? this.udp.stun() : Promise.resolve([]),
      this.relay.measureAll(),
    ]);
    const answered = stun.filter((r) => r.mapped !== null);
    const servers = new Set(answered.map((r) => parseUdpAddr(r.server)?.address ?? r.server));
    const mapped = new Set(answered.map((r) => r.mapped));
    return {
      udp: this.udp ? answered.length > 0 : null,
      port: this.udp?.port ?? null,
      stun,
      mappingVariesByDestIP: servers.size >= 2 ? mapped.size > 1 : null,
      endpoints: this.udp?.endpoints() ?? [],
      relayLatencyMs: Object.fromEntries([...latencies].map(([r, ms]) => [String(r), ms])),
      homeRegion: this.relay.home,
    };
  }

  /** Measure the home relay's round trip (for status). */
  measureRelay(): Promise<number | null> {
    return this.relay.measure();
  }

  /** Stop: close paths, connections and the control stream (the node stays registered). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.abortStart?.(new EngineError("the engine was closed before the control server sent its first map"));
    this.watcher?.stop();
    if (this.timer) clearTimeout(this.timer);
    if (this.probeTimer) clearInterval(this.probeTimer);
    for (const st of this.peers.values()) st.direct?.link.close();
    for (const c of this.conns.values()) c.closedBy(true, true);
    for (const p of this.connecting.values()) p.reject(new ConnectionError("the engine stopped", "aborted"));
    for (const p of this.pings.values()) p.reject(new ConnectionError("the engine stopped", "aborted"));
    this.pings.clear();
    this.fromHost = [];
    this.udp?.close();
    this.relay.close();
    this.wasm.close();
  }
}
