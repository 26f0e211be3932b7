// ICMP echo for an engine without a userspace stack (a gateway in TUN mode):
// the engine builds the request itself, with the node's own address as its
// source, and picks the reply out of the packets it would hand to the host.
// Browser-safe: plain bytes, no Node built-ins.

const ICMP4 = 1;
const ICMP6 = 58;

function sum16(buf: Uint8Array, start = 0): number {
  let sum = start;
  for (let i = 0; i < buf.length; i += 2) sum += (buf[i]! << 8) | (buf[i + 1] ?? 0);
  return sum;
}

function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/**
 * An IPv4 (ICMP type 8) or IPv6 (ICMPv6 type 128) echo request from `src` to
 * `dst` (both 4 or both 16 network-order bytes), checksums filled in.
 */
export function echoRequest(
  src: Uint8Array,
  dst: Uint8Array,
  ident: number,
  seq: number,
  payload: Uint8Array,
): Uint8Array {
  if (src.length !== dst.length || (src.length !== 4 && src.length !== 16)) {
    throw new RangeError("echoRequest: source and destination must both be IPv4 or both IPv6");
  }
  const v6 = src.length === 16;
  const icmp = new Uint8Array(8 + payload.length);
  const iv = new DataView(icmp.buffer);
  icmp[0] = v6 ? 128 : 8;
  iv.setUint16(4, ident & 0xffff);
  iv.setUint16(6, seq & 0xffff);
  icmp.set(payload, 8);
  if (v6) {
    // ICMPv6 checksums cover a pseudo-header: addresses, length, next header.
    const pseudo = new Uint8Array(40);
    pseudo.set(src, 0);
    pseudo.set(dst, 16);
    new DataView(pseudo.buffer).setUint32(32, icmp.length);
    pseudo[39] = ICMP6;
    iv.setUint16(2, fold(sum16(icmp, sum16(pseudo))));
    const pkt = new Uint8Array(40 + icmp.length);
    const pv = new DataView(pkt.buffer);
    pkt[0] = 0x60;
    pv.setUint16(4, icmp.length);
    pkt[6] = ICMP6;
    pkt[7] = 64;
    pkt.set(src, 8);
    pkt.set(dst, 24);
    pkt.set(icmp, 40);
    return pkt;
  }
  iv.setUint16(2, fold(sum16(icmp)));
  const pkt = new Uint8Array(20 + icmp.length);
  const pv = new DataView(pkt.buffer);
  pkt[0] = 0x45;
  pv.setUint16(2, pkt.length);
  pkt[8] = 64;
  pkt[9] = ICMP4;
  pkt.set(src, 12);
  pkt.set(dst, 16);
  pv.setUint16(10, fold(sum16(pkt.subarray(0, 20))));
  pkt.set(icmp, 20);
  return pkt;
}

/** An echo reply's identifier, sequence number and source, or null for any other packet. */
export function parseEchoReply(pkt: Uint8Array): { ident: number; seq: number; from: Uint8Array } | null {
  const dv = new DataView(pkt.buffer, pkt.byteOffset, pkt.byteLength);
  const version = pkt[0]! >> 4;
  if (version === 4 && pkt.length >= 28) {
    const ihl = (pkt[0]! & 0x0f) * 4;
    // Only unfragmented packets (a reply's first fragment alone would do, but ours are small).
    if (pkt[9] !== ICMP4 || pkt.length < ihl + 8 || (dv.getUint16(6) & 0x3fff) !== 0) return null;
    if (pkt[ihl] !== 0) return null;
    return { ident: dv.getUint16(ihl + 4), seq: dv.getUint16(ihl + 6), from: pkt.slice(12, 16) };
  }
  if (version === 6 && pkt.length >= 48) {
    if (pkt[6] !== ICMP6 || pkt[40] !== 129) return null;
    return { ident: dv.getUint16(44), seq: dv.getUint16(46), from: pkt.slice(8, 24) };
  }
  return null;
}
