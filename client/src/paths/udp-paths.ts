// Direct UDP paths between nodes that have a UDP socket (gateways), as
// Tailscale's magicsock does it: each node learns its public endpoint from
// the relays' STUN servers and publishes its endpoints through the control
// server; a node with traffic for a peer pings every endpoint the peer
// published and, over the relay, asks the peer to ping back ("call me
// maybe"), so that both NATs open at once (simultaneous open). The first
// address a pong comes back from carries the peer's WireGuard datagrams; a
// heartbeat keeps it verified while traffic flows, and when pongs stop the
// relay takes over again — the WireGuard session above never notices.
//
// WireGuard datagrams are accepted only from addresses a peer proved with
// an authenticated disco message, so a stranger cannot inject into a peer's
// path by guessing its receiver index. Plain WireGuard peers, which speak no
// disco, are the engine's to handle (onUnprovenDatagram): WireGuard itself
// authenticates them, and only they may use such an address.
import { bytesToHex } from "@noble/hashes/utils.js";
import { bindingRequest, parseBindingResponse, parseStunHeader } from "@trellis/proto/stun";
import { boxSharedKey } from "./derp/box";
import {
  type DiscoMessage,
  discoSender,
  formatUdpAddr,
  isDisco,
  MAX_CALL_ENDPOINTS,
  newTxid,
  openDisco,
  parseUdpAddr,
  sealDisco,
  type UdpAddr,
} from "./disco";
import type { UdpSocket } from "./udp";

/** Ping the path in use this often while traffic flows (Tailscale: 3 s). */
export const HEARTBEAT_MS = 2_000;
/** A path with no pong for this long is no longer trusted (Tailscale: 6.5 s). */
export const TRUST_MS = 6_500;
/** Heartbeats stop after this long without traffic to the peer. */
const ACTIVE_MS = 45_000;
/** Ping every candidate (and call the peer) at most this often. */
const PING_ALL_EVERY_MS = 5_000;
/** Answer a call-me-maybe with pings at most this often per peer. */
const ANSWER_CALL_EVERY_MS = 1_000;
/** Re-learn our public endpoints this often. */
export const STUN_EVERY_MS = 25_000;
/** A STUN request unanswered for this long is given up. */
const STUN_TIMEOUT_MS = 3_000;
/** Addresses remembered per peer (published, called and seen). */
const MAX_CANDIDATES = 32;
/** Unanswered pings remembered per peer. */
const MAX_PENDING = 64;
/** A switch to another address needs a round trip this much shorter. */
const BETTER_RATIO = 0.8;

interface Candidate {
  addr: UdpAddr;
  key: string;
  lastPong: number;
  rttMs: number | null;
}

interface PeerUdp {
  key: Uint8Array;
  name: string;
  shared: Uint8Array;
  /** Published by the peer through the control server. */
  published: string[];
  candidates: Map<string, Candidate>;
  best: Candidate | null;
  pending: Map<string, { cand: string; sentAt: number }>;
  lastPingAll: number;
  lastAnswer: number;
  lastHeartbeat: number;
  lastActive: number;
  /** Why there is no direct UDP path, for people. */
  why: string;
}

export interface UdpPathsOptions {
  socket: UdpSocket;
  privateKey: Uint8Array;
  publicKey: Uint8Array;
  /** Send a disco message to a peer over the relay (call-me-maybe). */
  sendRelay(peer: Uint8Array, data: Uint8Array): void;
  /** A WireGuard datagram from a peer's proven address. */
  onDatagram(peerKeyHex: string, data: Uint8Array): void;
  /**
   * A WireGuard datagram from an address no peer proved: a plain WireGuard
   * peer's (it speaks no disco, and WireGuard authenticates what it sends).
   * Without this hook such datagrams are dropped (`udp_unknown_source`).
   */
  onUnprovenDatagram?(data: Uint8Array, from: UdpAddr): void;
  /** Our endpoints changed (report them to the control server). */
  onEndpoints(endpoints: string[]): void;
  /** A peer's path changed (for status). */
  onChange(): void;
  log(msg: string, detail?: Record<string, unknown>): void;
  now?: () => number;
}

export interface StunResult {
  server: string;
  /** Our address as that server saw it; null when it did not answer. */
  mapped: string | null;
  latencyMs: number | null;
}

const hex = bytesToHex;

export class UdpPaths {
  private readonly peers = new Map<string, PeerUdp>();
  /** Proven address ("ip:port") → the peer whose datagrams come from it. */
  private readonly byAddr = new Map<string, PeerUdp>();
  private stunServers: UdpAddr[] = [];
  private readonly stunWaiting = new Map<string, (mapped: UdpAddr) => void>();
  private mapped: string[] = [];
  private reported = "";
  private stunTimer: ReturnType<typeof setInterval> | null = null;
  private readonly now: () => number;
  /** Datagrams dropped here, by reason. */
  readonly drops: Record<string, number> = {};
  private closed = false;

  constructor(private readonly opts: UdpPathsOptions) {
    this.now = opts.now ?? Date.now;
    opts.socket.onMessage((data, from) => this.receive(data, from));
  }

  get port(): number {
    return this.opts.socket.port;
  }

  private drop(reason: string): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
  }

  // ---- our endpoints -------------------------------------------------------------

  /** The relays' STUN servers (from the relay map); learns our endpoints now and every STUN_EVERY_MS. */
  setStunServers(servers: UdpAddr[]): void {
    const same = JSON.stringify(servers) === JSON.stringify(this.stunServers);
    this.stunServers = servers;
    if (!same || !this.stunTimer) {
      void this.refreshEndpoints();
      if (!this.stunTimer) {
        this.stunTimer = setInterval(() => void this.refreshEndpoints(), STUN_EVERY_MS);
        (this.stunTimer as { unref?: () => void }).unref?.();
      }
    }
  }

  /** Where peers may reach us: STUN-mapped addresses first, then this host's own. */
  endpoints(): string[] {
    const local = this.opts.socket
      .localAddresses()
      .map((a) => formatUdpAddr({ address: a, port: this.port }));
    return [...new Set([...this.mapped, ...local])].slice(0, MAX_CALL_ENDPOINTS);
  }

  private async refreshEndpoints(): Promise<void> {
    if (this.closed) return;
    const results = await this.stun();
    if (this.closed) return; // closed while asking: nobody to tell
    this.mapped = [...new Set(results.flatMap((r) => (r.mapped ? [r.mapped] : [])))];
    const eps = this.endpoints();
    const text = eps.join(",");
    if (text !== this.reported) {
      this.reported = text;
      this.opts.log("UDP endpoints", { endpoints: eps });
      this.opts.onEndpoints(eps);
    }
  }

  /** Ask every STUN server once (in parallel) where it sees us. */
  stun(timeoutMs = STUN_TIMEOUT_MS): Promise<StunResult[]> {
    return Promise.all(
      this.stunServers.map(
        (server) =>
          new Promise<StunResult>((resolve) => {
            const txid = newTxid();
            const id = hex(txid);
            const sentAt = this.now();
            const name = formatUdpAddr(server);
            const timer = setTimeout(() => {
              this.stunWaiting.delete(id);
              resolve({ server: name, mapped: null, latencyMs: null });
            }, timeoutMs);
            this.stunWaiting.set(id, (mapped) => {
              clearTimeout(timer);
              this.stunWaiting.delete(id);
              resolve({ server: name, mapped: formatUdpAddr(mapped), latencyMs: this.now() - sentAt });
            });
            if (!this.closed) this.opts.socket.send(bindingRequest(txid), server);
          }),
      ),
    );
  }

  // ---- peers ---------------------------------------------------------------------

  /** Add or update a peer and the endpoints it published. */
  setPeer(key: Uint8Array, name: string, published: string[]): void {
    const k = hex(key);
    let p = this.peers.get(k);
    if (!p) {
      p = {
        key,
        name,
        shared: boxSharedKey(this.opts.privateKey, key),
        published: [],
        candidates: new Map(),
        best: null,
        pending: new Map(),
        lastPingAll: 0,
        lastAnswer: 0,
        lastHeartbeat: 0,
        lastActive: 0,
        why: "no traffic yet",
      };
      this.peers.set(k, p);
    }
    p.name = name;
    p.published = published.slice(0, MAX_CALL_ENDPOINTS);
    for (const text of p.published) {
      const a = parseUdpAddr(text);
      if (a) this.candidate(p, a);
    }
  }

  removePeer(key: Uint8Array): void {
    const k = hex(key);
    const p = this.peers.get(k);
    if (!p) return;
    for (const c of p.candidates.values()) if (this.byAddr.get(c.key) === p) this.byAddr.delete(c.key);
    this.peers.delete(k);
  }

  /** Whether `key` is a peer we can try UDP with (it published endpoints, or called us). */
  capable(key: Uint8Array): boolean {
    const p = this.peers.get(hex(key));
    return p !== undefined && p.candidates.size > 0;
  }

  private candidate(p: PeerUdp, addr: UdpAddr): Candidate {
    const key = formatUdpAddr(addr);
    let c = p.candidates.get(key);
    if (!c) {
      if (p.candidates.size >= MAX_CANDIDATES) {
        // Forget the address heard from longest ago (never the one in use).
        let oldest: Candidate | null = null;
        for (const x of p.candidates.values()) {
          if (x !== p.best && (!oldest || x.lastPong < oldest.lastPong)) oldest = x;
        }
        if (oldest) {
          p.candidates.delete(oldest.key);
          if (this.byAddr.get(oldest.key) === p) this.byAddr.delete(oldest.key);
        }
      }
      c = { addr, key, lastPong: 0, rttMs: null };
      p.candidates.set(key, c);
    }
    return c;
  }

  private trusted(p: PeerUdp, now = this.now()): boolean {
    return p.best !== null && now - p.best.lastPong < TRUST_MS;
  }

  /** Whether the peer's UDP path carries traffic now. */
  usable(key: Uint8Array): boolean {
    const p = this.peers.get(hex(key));
    return p !== undefined && this.trusted(p);
  }

  /** The address in use and its round trip, or why there is none. */
  describe(key: Uint8Array): { addr: string; rttMs: number | null } | { why: string } {
    const p = this.peers.get(hex(key));
    if (!p) return { why: "no UDP path" };
    if (this.trusted(p)) return { addr: p.best!.key, rttMs: p.best!.rttMs };
    if (p.best)
      return {
        why: `UDP path ${p.best.key} stalled (no answer for ${Math.round((this.now() - p.best.lastPong) / 1000)} s)`,
      };
    return { why: p.why };
  }

  /** The address of the peer's UDP path while it is trusted (a native data plane sends there itself). */
  route(key: Uint8Array): UdpAddr | null {
    const p = this.peers.get(hex(key));
    return p && this.trusted(p) ? p.best!.addr : null;
  }

  /** Traffic for the peer went over its UDP path without `send` (a native data plane): keep heartbeats going. */
  touch(key: Uint8Array): void {
    const p = this.peers.get(hex(key));
    if (p) p.lastActive = this.now();
  }

  /** Send a WireGuard datagram over the peer's UDP path; false when it has none it trusts. */
  send(key: Uint8Array, data: Uint8Array): boolean {
    const p = this.peers.get(hex(key));
    if (!p) return false;
    const now = this.now();
    p.lastActive = now;
    if (!this.trusted(p, now)) return false;
    this.opts.socket.send(data, p.best!.addr);
    return true;
  }

  /**
   * Traffic for the peer goes over the relay: try to open a UDP path (ping
   * every candidate, and ask the peer over the relay to ping us back).
   */
  wantDirect(key: Uint8Array): void {
    const p = this.peers.get(hex(key));
    if (!p || this.closed) return;
    const now = this.now();
    p.lastActive = now;
    if (now - p.lastPingAll < PING_ALL_EVERY_MS) return;
    p.lastPingAll = now;
    if (p.candidates.size === 0) {
      p.why = "the peer published no UDP endpoints";
      return;
    }
    p.why = `trying UDP to ${[...p.candidates.keys()].join(", ")}`;
    for (const c of p.candidates.values()) this.ping(p, c);
    const eps = this.endpoints().flatMap((e) => {
      const a = parseUdpAddr(e);
      return a ? [a] : [];
    });
    if (eps.length)
      this.opts.sendRelay(
        p.key,
        sealDisco({ type: "call-me-maybe", endpoints: eps }, p.shared, this.opts.publicKey),
      );
  }

  private ping(p: PeerUdp, c: Candidate): void {
    const txid = newTxid();
    p.pending.set(hex(txid), { cand: c.key, sentAt: this.now() });
    if (p.pending.size > MAX_PENDING) p.pending.delete(p.pending.keys().next().value!);
    this.opts.socket.send(sealDisco({ type: "ping", txid }, p.shared, this.opts.publicKey), c.addr);
  }

  /** Heartbeats for active peers, and noticing paths that stopped answering. */
  tick(): void {
    const now = this.now();
    for (const p of this.peers.values()) {
      if (!p.best) continue;
      const wasTrusted = now - 500 - p.best.lastPong < TRUST_MS;
      if (now - p.lastActive < ACTIVE_MS && now - p.lastHeartbeat >= HEARTBEAT_MS) {
        p.lastHeartbeat = now;
        this.ping(p, p.best);
        // Another address may have become better (or the best one may be gone).
        if (now - p.lastPingAll >= PING_ALL_EVERY_MS * 6 || !this.trusted(p, now)) {
          p.lastPingAll = now;
          for (const c of p.candidates.values()) if (c !== p.best) this.ping(p, c);
        }
      }
      if (wasTrusted && !this.trusted(p, now)) {
        this.opts.log("UDP path stalled", { peer: p.name, addr: p.best.key });
        this.opts.onChange();
      }
    }
  }

  // ---- receiving -------------------------------------------------------------------

  private receive(data: Uint8Array, from: UdpAddr): void {
    const first = data[0];
    // WireGuard: type 1–4 and three zero bytes. (A STUN answer starts 0x01 0x01.)
    if (first !== undefined && first >= 1 && first <= 4 && data[1] === 0 && data[2] === 0 && data[3] === 0) {
      const p = this.byAddr.get(formatUdpAddr(from));
      if (!p) {
        if (this.opts.onUnprovenDatagram) return this.opts.onUnprovenDatagram(data, from);
        return this.drop("udp_unknown_source");
      }
      this.opts.onDatagram(hex(p.key), data);
      return;
    }
    if (isDisco(data)) return this.disco(data, from);
    const h = parseStunHeader(data);
    if (h) {
      const done = this.stunWaiting.get(hex(h.transactionId));
      const mapped = done && parseBindingResponse(data);
      if (done && mapped) done(mapped);
      else this.drop("udp_stray_stun");
      return;
    }
    this.drop("udp_unknown");
  }

  /** A disco message relayed to us by `src`'s key (the relay vouches for the sender). */
  fromRelay(src: Uint8Array, data: Uint8Array): void {
    if (!isDisco(data)) return this.drop("udp_unknown");
    this.disco(data, null, src);
  }

  private disco(data: Uint8Array, from: UdpAddr | null, relaySrc?: Uint8Array): void {
    const sender = discoSender(data);
    if (relaySrc && hex(relaySrc) !== hex(sender)) return this.drop("disco_forged");
    const p = this.peers.get(hex(sender));
    if (!p) return this.drop("disco_unknown_peer");
    const m: DiscoMessage | null = openDisco(data, p.shared);
    if (!m) return this.drop("disco_forged");
    const now = this.now();
    switch (m.type) {
      case "ping": {
        if (!from) return; // pings come over UDP only
        const c = this.candidate(p, from);
        this.byAddr.set(c.key, p);
        this.opts.socket.send(
          sealDisco({ type: "pong", txid: m.txid, src: from }, p.shared, this.opts.publicKey),
          from,
        );
        // A peer that reaches us from there may be reachable there: prove it
        // ourselves (our earlier pings may have died at its NAT before it
        // opened). One ping per authenticated ping received: no amplification.
        if (!this.trusted(p, now)) this.ping(p, c);
        return;
      }
      case "pong": {
        if (!from) return;
        const id = hex(m.txid);
        const sent = p.pending.get(id);
        if (!sent) return this.drop("disco_unexpected_pong");
        p.pending.delete(id);
        // The pong may come from another address than the one pinged (a NAT
        // rewrote it): what carries traffic is where it came from.
        const c = this.candidate(p, from);
        c.lastPong = now;
        c.rttMs = now - sent.sentAt;
        this.byAddr.set(c.key, p);
        const wasTrusted = this.trusted(p, now - 1);
        const old = p.best;
        if (
          !old ||
          old === c ||
          now - old.lastPong >= TRUST_MS ||
          (old.rttMs !== null && c.rttMs < old.rttMs * BETTER_RATIO)
        ) {
          p.best = c;
        }
        if (p.best === c && (old !== c || !wasTrusted)) {
          this.opts.log("UDP path verified", { peer: p.name, addr: c.key, rttMs: c.rttMs });
          this.opts.onChange();
        }
        return;
      }
      case "call-me-maybe": {
        for (const a of m.endpoints) this.candidate(p, a);
        if (now - p.lastAnswer < ANSWER_CALL_EVERY_MS) return;
        p.lastAnswer = now;
        p.lastActive = now;
        for (const c of p.candidates.values()) this.ping(p, c);
        return;
      }
    }
  }

  close(): void {
    this.closed = true;
    if (this.stunTimer) clearInterval(this.stunTimer);
    this.opts.socket.close();
  }
}
