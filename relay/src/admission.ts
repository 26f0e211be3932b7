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

interface Entry {
  key: string;
  nonce: string;
  at: number;
}

/**
 * The (client key, box nonce) pairs of recent logins. Memory is bounded:
 * each entry is forgotten after `windowMs`, a key keeps its `perKey` most
 * recent ones, and at most `max` are kept in all (~100 bytes each).
 */
export class LoginReplays {
  /** Per key (hex): nonce (latin1) → when it was claimed. */
  private readonly byKey = new Map<string, Map<string, number>>();
  /** Every claim in time order; entries already forgotten are skipped when they come up. */
  private order: Entry[] = [];
  private head = 0;
  private count = 0;

  constructor(private readonly limits: LoginReplayLimits) {}

  /** Nonces remembered now. */
  get size(): number {
    return this.count;
  }

  /**
   * Claim a login's nonce for its key: false when it was claimed before
   * (within the window and still remembered), true when it is new and is
   * remembered from now on.
   */
  claim(key: string, nonce: string, now: number): boolean {
    this.expire(now);
    let nonces = this.byKey.get(key);
    if (nonces?.has(nonce)) return false;
    if (!nonces) {
      nonces = new Map();
      this.byKey.set(key, nonces);
    }
    if (nonces.size >= this.limits.perKey) {
      const oldest = nonces.keys().next().value!;
      nonces.delete(oldest);
      this.count--;
    }
    while (this.count >= this.limits.max && this.head < this.order.length) this.forgetOldest();
    nonces.set(nonce, now);
    this.count++;
    this.order.push({ key, nonce, at: now });
    // Entries forgotten by the per-key bound stay in `order` until they come up: compact now and then.
    if (this.order.length - this.head > 2 * this.limits.max + 1024) this.compact();
    return true;
  }

  /** Forget a claim (a login refused after its nonce was claimed: it costs no memory). */
  release(key: string, nonce: string): void {
    const nonces = this.byKey.get(key);
    if (!nonces?.delete(nonce)) return;
    this.count--;
    if (nonces.size === 0) this.byKey.delete(key);
  }

  private expire(now: number): void {
    while (this.head < this.order.length && now - this.order[this.head]!.at >= this.limits.windowMs) {
      this.forgetOldest();
    }
    if (this.head > 1024 && this.head * 2 > this.order.length) this.compact();
  }

  private forgetOldest(): void {
    const e = this.order[this.head++]!;
    const nonces = this.byKey.get(e.key);
    if (nonces?.get(e.nonce) !== e.at) return;
    nonces.delete(e.nonce);
    this.count--;
    if (nonces.size === 0) this.byKey.delete(e.key);
  }

  private compact(): void {
    this.order = this.order.slice(this.head).filter((e) => this.byKey.get(e.key)?.get(e.nonce) === e.at);
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
