// Path discovery messages between two nodes ("disco", after Tailscale's):
// pings and pongs that prove a UDP address reaches a peer, and "call me
// maybe", which asks a peer (over the relay) to ping us back at our
// endpoints so that both NATs open at once. Each message is a NaCl box from
// the sender's node key to the recipient's, so only that peer can have sent
// it: a forged pong cannot steer traffic to an address of an attacker's
// choosing. Browser-safe.
//
//   packet  = MAGIC (6) ‖ sender node key (32) ‖ box(nonce 24 ‖ sealed payload)
//   payload = type (1) ‖ body
//     ping          txid (12)
//     pong          txid (12) ‖ the ping's source as the recipient saw it (address 16, port 2)
//     call-me-maybe endpoints (address 16 ‖ port 2, at most 16)
//
// The magic's first byte, 'T' (0x54), is neither a WireGuard message type
// (1–4) nor a STUN message (whose first two bits are 0), so one UDP socket
// carries all three.
import { addrBytes, addrFromBytes, formatAddr, parseSocketAddr } from "@trellis/proto/ip";
import { openBoxWith, sealBoxWith } from "./derp/box";

export const DISCO_MAGIC = new Uint8Array([0x54, 0x52, 0x4c, 0xf0, 0x9f, 0x92]); // "TRL" + 3 bytes
const KEY_LEN = 32;
const HEADER_LEN = DISCO_MAGIC.length + KEY_LEN;
const TXID_LEN = 12;
const ADDR_LEN = 18;
/** Endpoints in one call-me-maybe (the control protocol's own limit is 16 too). */
export const MAX_CALL_ENDPOINTS = 16;
/** No disco message is larger than this (a full call-me-maybe with its box). */
export const MAX_DISCO_LEN = HEADER_LEN + 24 + 16 + 1 + MAX_CALL_ENDPOINTS * ADDR_LEN;

const PING = 1;
const PONG = 2;
const CALL_ME_MAYBE = 3;

/** A UDP endpoint: an IP address (text form) and a port. */
export interface UdpAddr {
  address: string;
  port: number;
}

export type DiscoMessage =
  | { type: "ping"; txid: Uint8Array }
  | { type: "pong"; txid: Uint8Array; src: UdpAddr }
  | { type: "call-me-maybe"; endpoints: UdpAddr[] };

/** "address:port" (IPv6 in brackets), the form endpoints take in the control protocol. */
export function formatUdpAddr(a: UdpAddr): string {
  return a.address.includes(":") ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

/** Parse "address:port" or "[v6]:port"; null when it is not one. */
export function parseUdpAddr(text: string): UdpAddr | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(text);
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  const addr = parseSocketAddr(m[1] ?? m[2]!);
  return addr ? { address: formatAddr(addr), port } : null;
}

function putAddr(out: Uint8Array, at: number, a: UdpAddr): void {
  const addr = parseSocketAddr(a.address);
  if (!addr) throw new RangeError(`"${a.address}" is not an IP address`);
  const b = addrBytes(addr);
  // IPv4 as IPv4-mapped IPv6, so every address takes 16 bytes.
  if (b.length === 4) {
    out[at + 10] = 0xff;
    out[at + 11] = 0xff;
    out.set(b, at + 12);
  } else out.set(b, at);
  out[at + 16] = a.port >> 8;
  out[at + 17] = a.port & 0xff;
}

function getAddr(b: Uint8Array, at: number): UdpAddr | null {
  const raw = b.subarray(at, at + 16);
  const mapped = raw.subarray(0, 10).every((x) => x === 0) && raw[10] === 0xff && raw[11] === 0xff;
  const addr = addrFromBytes(mapped ? raw.slice(12) : raw.slice());
  const port = (b[at + 16]! << 8) | b[at + 17]!;
  return addr && port > 0 ? { address: formatAddr(addr), port } : null;
}

function encodePayload(m: DiscoMessage): Uint8Array {
  switch (m.type) {
    case "ping": {
      const out = new Uint8Array(1 + TXID_LEN);
      out[0] = PING;
      out.set(m.txid, 1);
      return out;
    }
    case "pong": {
      const out = new Uint8Array(1 + TXID_LEN + ADDR_LEN);
      out[0] = PONG;
      out.set(m.txid, 1);
      putAddr(out, 1 + TXID_LEN, m.src);
      return out;
    }
    case "call-me-maybe": {
      const eps = m.endpoints.slice(0, MAX_CALL_ENDPOINTS);
      const out = new Uint8Array(1 + eps.length * ADDR_LEN);
      out[0] = CALL_ME_MAYBE;
      eps.forEach((e, i) => putAddr(out, 1 + i * ADDR_LEN, e));
      return out;
    }
  }
}

function decodePayload(p: Uint8Array): DiscoMessage | null {
  switch (p[0]) {
    case PING:
      return p.length === 1 + TXID_LEN ? { type: "ping", txid: p.slice(1) } : null;
    case PONG: {
      if (p.length !== 1 + TXID_LEN + ADDR_LEN) return null;
      const src = getAddr(p, 1 + TXID_LEN);
      return src ? { type: "pong", txid: p.slice(1, 1 + TXID_LEN), src } : null;
    }
    case CALL_ME_MAYBE: {
      const n = (p.length - 1) / ADDR_LEN;
      if (!Number.isInteger(n) || n > MAX_CALL_ENDPOINTS) return null;
      const endpoints: UdpAddr[] = [];
      for (let i = 0; i < n; i++) {
        const a = getAddr(p, 1 + i * ADDR_LEN);
        if (a) endpoints.push(a);
      }
      return { type: "call-me-maybe", endpoints };
    }
    default:
      return null;
  }
}

/** Whether a datagram is a disco message (by its magic; not yet authenticated). */
export function isDisco(data: Uint8Array): boolean {
  if (data.length < HEADER_LEN || data.length > MAX_DISCO_LEN) return false;
  for (let i = 0; i < DISCO_MAGIC.length; i++) if (data[i] !== DISCO_MAGIC[i]) return false;
  return true;
}

/** The sender's node key a disco message claims (open it with that key to know it is true). */
export function discoSender(data: Uint8Array): Uint8Array {
  return data.subarray(DISCO_MAGIC.length, HEADER_LEN);
}

/**
 * Seal `m` from us (`publicKey`) to a peer; `sharedKey` is
 * `boxSharedKey(our private key, peer's public key)`, computed once per peer
 * so that a flood of forged messages costs a MAC check each, not an X25519.
 */
export function sealDisco(m: DiscoMessage, sharedKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  const box = sealBoxWith(sharedKey, encodePayload(m));
  const out = new Uint8Array(HEADER_LEN + box.length);
  out.set(DISCO_MAGIC);
  out.set(publicKey, DISCO_MAGIC.length);
  out.set(box, HEADER_LEN);
  return out;
}

/**
 * Open a disco message that `discoSender(data)` sealed for us, with the
 * shared key of that sender and us; null when it is not one, does not
 * authenticate, or is malformed.
 */
export function openDisco(data: Uint8Array, sharedKey: Uint8Array): DiscoMessage | null {
  if (!isDisco(data)) return null;
  const payload = openBoxWith(sharedKey, data.subarray(HEADER_LEN));
  return payload ? decodePayload(payload) : null;
}

/** A fresh transaction id. */
export function newTxid(): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(TXID_LEN));
}
