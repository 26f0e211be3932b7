// Who may start and finish a DERP login. DERP's login has no server
// challenge: the client seals its info to the relay's key with a random
// 24-byte nonce, and Tailscale's client sends it before it has read anything
// from the relay (at once when it knows the relay's key, with
// Derp-Fast-Start). A captured ClientInfo frame therefore opens on any later
// connection to the same relay, and logging in again for a key replaces the
// connection that has it. What a compatible relay can do is remember the
// nonces it has accepted and refuse one seen again (LoginReplays), and bound
// the connections still logging in, per client address (HandshakeSlots).
import { parseSocketAddr } from "@trellis/proto/ip";

/** The address a client's handshakes are counted under: IPv4 as is, IPv6 by its /64 (one host's share). */
export function handshakeKey(ip: string): string {
  const a = parseSocketAddr(ip);
  if (!a) return ip;
  return a.v === 4 ? `4:${a.n.toString(16)}` : `6:${(a.n >> 64n).toString(16)}/64`;
}

export interface LoginReplayLimits {
  /** How long an accepted login's nonce is remembered. */
  windowMs: number;
  /** Nonces remembered per client key (its most recent logins). */
  perKey: number;
  /** Nonces remembered in all; the oldest go first. */
  max: number;
}

/** Bytes of a box nonce remembered: 96 random bits tell one login from another (the nonce is authenticated). */
export const NONCE_TAG_LEN = 12;

/** One key's remembered logins: their nonce tags in one string, oldest first, numbered first..next-1. */
interface KeyLog {
  readonly key: string;
  tags: string;
  first: number;
  next: number;
}

/**
 * The (client key, box nonce) pairs of recent logins. Memory is bounded:
 * each pair is forgotten after `windowMs`, a key keeps its `perKey` most
 * recent, and at most `max` are kept in all, the oldest going first
 * (measured: ~100 bytes a pair, ~200 when every pair is another key's).
 */
export class LoginReplays {
  private readonly byKey = new Map<string, KeyLog>();
  /** Every pair remembered, in time order (parallel arrays from `head`); pairs already forgotten are skipped. */
  private qLog: KeyLog[] = [];
  private qSeq: number[] = [];
  private qAt: number[] = [];
  private head = 0;
  private count = 0;

  constructor(private readonly limits: LoginReplayLimits) {}

  /** Pairs remembered now. */
  get size(): number {
    return this.count;
  }

  /**
   * Whether `key` (any string) logged in with the nonce `tag` (its first
   * NONCE_TAG_LEN bytes as latin1) and that is still remembered.
   */
  seen(key: string, tag: string, now: number): boolean {
    this.expire(now);
    const log = this.byKey.get(key);
    if (!log) return false;
    for (let i = log.tags.indexOf(tag); i >= 0; i = log.tags.indexOf(tag, i + 1)) {
      if (i % NONCE_TAG_LEN === 0) return true;
    }
    return false;
  }

  /** Remember a login: a later {@link seen} of the pair is true for as long as it is kept. */
  remember(key: string, tag: string, now: number): void {
    this.expire(now);
    let log = this.byKey.get(key);
    if (!log) {
      log = { key, tags: "", first: 0, next: 0 };
      this.byKey.set(key, log);
    }
    if (log.next - log.first >= this.limits.perKey) this.dropFirst(log);
    while (this.count >= this.limits.max && this.head < this.qLog.length) this.forgetOldest();
    if (this.byKey.get(key) !== log) this.byKey.set(key, log);
    log.tags += tag;
    this.qLog.push(log);
    this.qSeq.push(log.next++);
    this.qAt.push(now);
    this.count++;
    // Pairs forgotten by the per-key bound stay queued until they come up: compact now and then.
    if (this.qLog.length - this.head > 2 * this.limits.max + 1024) this.compact();
  }

  private expire(now: number): void {
    while (this.head < this.qLog.length && now - this.qAt[this.head]! >= this.limits.windowMs) {
      this.forgetOldest();
    }
    if (this.head > 1024 && this.head * 2 > this.qLog.length) this.compact();
  }

  /** Forget the oldest queued pair, unless it is gone already (then it is only dequeued). */
  private forgetOldest(): void {
    const log = this.qLog[this.head]!;
    const seq = this.qSeq[this.head]!;
    this.head++;
    if (seq >= log.first && this.byKey.get(log.key) === log) this.dropFirst(log);
  }

  private dropFirst(log: KeyLog): void {
    log.tags = log.tags.slice(NONCE_TAG_LEN);
    log.first++;
    this.count--;
    if (log.first === log.next) this.byKey.delete(log.key);
  }

  private compact(): void {
    const keep = (i: number) => {
      const log = this.qLog[i]!;
      return this.qSeq[i]! >= log.first && this.byKey.get(log.key) === log;
    };
    const idx: number[] = [];
    for (let i = this.head; i < this.qLog.length; i++) if (keep(i)) idx.push(i);
    this.qLog = idx.map((i) => this.qLog[i]!);
    this.qSeq = idx.map((i) => this.qSeq[i]!);
    this.qAt = idx.map((i) => this.qAt[i]!);
    this.head = 0;
  }
}

/** Connections still in the handshake, counted per client address (see {@link handshakeKey}). */
export class HandshakeSlots {
  private readonly byAddr = new Map<string, number>();
  private total = 0;

  constructor(private readonly perAddr: number) {}

  /** Connections in the handshake now, all addresses together. */
  get size(): number {
    return this.total;
  }

  /** Whether another connection from `addr` may start a handshake (0: no per-address bound). */
  hasRoom(addr: string): boolean {
    return this.perAddr <= 0 || (this.byAddr.get(addr) ?? 0) < this.perAddr;
  }

  take(addr: string): void {
    this.byAddr.set(addr, (this.byAddr.get(addr) ?? 0) + 1);
    this.total++;
  }

  give(addr: string): void {
    const n = (this.byAddr.get(addr) ?? 0) - 1;
    if (n > 0) this.byAddr.set(addr, n);
    else this.byAddr.delete(addr);
    this.total--;
  }
}
