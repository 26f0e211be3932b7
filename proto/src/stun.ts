// STUN (RFC 8489) Binding messages: gateways send requests to learn their
// public endpoint and read the answers; the relay's STUN server
// (relay/src/stun.ts, which builds the answers) reads the requests.
// Bundle-safe: the node engine that uses it also runs in browsers.
import { addrFromBytes, formatAddr } from "./ip";

export const STUN_MAGIC_COOKIE = 0x2112a442;
export const HEADER_LEN = 20;
export const BINDING_REQUEST = 0x0001;
export const BINDING_SUCCESS = 0x0101;
export const ATTR_XOR_MAPPED_ADDRESS = 0x0020;
export const ATTR_SOFTWARE = 0x8022;
export const ATTR_FINGERPRINT = 0x8028;
export const FINGERPRINT_XOR = 0x5354554e;
/** Larger datagrams are not the Binding messages handled here (they are tiny). */
const MAX_MESSAGE = 548;

/** A parsed STUN message header. */
export interface StunHeader {
  type: number;
  length: number;
  transactionId: Uint8Array;
}

/**
 * Parse a datagram as a STUN message header, or return null when it is not
 * one: too short, first two bits set, wrong cookie, or a length that does not
 * match the datagram or is not a multiple of 4.
 */
export function parseStunHeader(buf: Uint8Array): StunHeader | null {
  if (buf.length < HEADER_LEN || buf.length > MAX_MESSAGE) return null;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const type = dv.getUint16(0);
  const length = dv.getUint16(2);
  if (type & 0xc000) return null;
  if (dv.getUint32(4) !== STUN_MAGIC_COOKIE) return null;
  if (length % 4 !== 0 || HEADER_LEN + length !== buf.length) return null;
  return { type, length, transactionId: buf.slice(8, 20) };
}

/** Decode XOR-MAPPED-ADDRESS from a Binding success response (for clients and tests). */
export function parseBindingResponse(buf: Uint8Array): { address: string; port: number } | null {
  const h = parseStunHeader(buf);
  if (!h || h.type !== BINDING_SUCCESS) return null;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = HEADER_LEN;
  while (off + 4 <= buf.length) {
    const type = dv.getUint16(off);
    const len = dv.getUint16(off + 2);
    if (off + 4 + len > buf.length) return null;
    if (type === ATTR_XOR_MAPPED_ADDRESS && len >= 8) {
      const family = buf[off + 5];
      const port = dv.getUint16(off + 6) ^ (STUN_MAGIC_COOKIE >>> 16);
      const mask = new Uint8Array(16);
      new DataView(mask.buffer).setUint32(0, STUN_MAGIC_COOKIE);
      mask.set(h.transactionId, 4);
      const n = family === 0x01 ? 4 : 16;
      if (len < 4 + n) return null;
      const a = Uint8Array.from({ length: n }, (_, i) => buf[off + 8 + i]! ^ mask[i]!);
      return { address: formatAddr(addrFromBytes(a)!), port };
    }
    off += 4 + ((len + 3) & ~3);
  }
  return null;
}

/** A Binding request with `transactionId` (12 bytes) and no attributes. */
export function bindingRequest(transactionId: Uint8Array): Uint8Array {
  if (transactionId.length !== 12) throw new RangeError("a STUN transaction id is 12 bytes");
  const out = new Uint8Array(HEADER_LEN);
  const dv = new DataView(out.buffer);
  dv.setUint16(0, BINDING_REQUEST);
  dv.setUint16(2, 0);
  dv.setUint32(4, STUN_MAGIC_COOKIE);
  out.set(transactionId, 8);
  return out;
}
