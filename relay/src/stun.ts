import { createSocket, type Socket } from "node:dgram";
import { crc32 } from "node:zlib";
import { addrBytes, addrFromBytes, formatAddr, parseSocketAddr } from "@trellis/proto/ip";

// A STUN server answering RFC 8489 Binding requests with the client's address
// as the server saw it (XOR-MAPPED-ADDRESS): gateways use it to learn their
// public endpoint, browsers use it as an ICE server for server-reflexive
// candidates.

export const STUN_MAGIC_COOKIE = 0x2112a442;
const HEADER_LEN = 20;
const BINDING_REQUEST = 0x0001;
const BINDING_SUCCESS = 0x0101;
const ATTR_XOR_MAPPED_ADDRESS = 0x0020;
const ATTR_SOFTWARE = 0x8022;
const ATTR_FINGERPRINT = 0x8028;
const FINGERPRINT_XOR = 0x5354554e;
const SOFTWARE = new TextEncoder().encode("trellis");
/** Requests larger than this are not STUN we answer (a Binding request is tiny). */
const MAX_REQUEST = 548;

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
  if (buf.length < HEADER_LEN || buf.length > MAX_REQUEST) return null;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const type = dv.getUint16(0);
  const length = dv.getUint16(2);
  if (type & 0xc000) return null;
  if (dv.getUint32(4) !== STUN_MAGIC_COOKIE) return null;
  if (length % 4 !== 0 || HEADER_LEN + length !== buf.length) return null;
  return { type, length, transactionId: buf.slice(8, 20) };
}

/** Build the Binding success response for `transactionId`, mapping to `address:port`. */
export function bindingResponse(transactionId: Uint8Array, address: string, port: number): Uint8Array {
  const parsed = parseSocketAddr(address);
  if (!parsed) throw new Error(`"${address}" is not an IP address`);
  // An IPv4 client on a dual-stack socket is answered as IPv4 (family 0x01).
  const addr = addrBytes(parsed);
  const xorAttrLen = 4 + addr.length;
  const softwareLen = SOFTWARE.length;
  const softwarePadded = (softwareLen + 3) & ~3;
  const bodyLen = 4 + xorAttrLen + 4 + softwarePadded + 8;
  const out = new Uint8Array(HEADER_LEN + bodyLen);
  const dv = new DataView(out.buffer);
  dv.setUint16(0, BINDING_SUCCESS);
  dv.setUint16(2, bodyLen);
  dv.setUint32(4, STUN_MAGIC_COOKIE);
  out.set(transactionId, 8);
  let off = HEADER_LEN;
  // XOR-MAPPED-ADDRESS: port XOR the cookie's top half; address XOR cookie (+ transaction id for IPv6).
  dv.setUint16(off, ATTR_XOR_MAPPED_ADDRESS);
  dv.setUint16(off + 2, xorAttrLen);
  out[off + 4] = 0;
  out[off + 5] = parsed.v === 4 ? 0x01 : 0x02;
  dv.setUint16(off + 6, port ^ (STUN_MAGIC_COOKIE >>> 16));
  const mask = new Uint8Array(16);
  new DataView(mask.buffer).setUint32(0, STUN_MAGIC_COOKIE);
  mask.set(transactionId, 4);
  for (let i = 0; i < addr.length; i++) out[off + 8 + i] = addr[i]! ^ mask[i]!;
  off += 4 + xorAttrLen;
  dv.setUint16(off, ATTR_SOFTWARE);
  dv.setUint16(off + 2, softwareLen);
  out.set(SOFTWARE, off + 4);
  off += 4 + softwarePadded;
  // FINGERPRINT covers everything before it, with the length already counting it.
  dv.setUint16(off, ATTR_FINGERPRINT);
  dv.setUint16(off + 2, 4);
  dv.setUint32(off + 4, (crc32(out.subarray(0, off)) ^ FINGERPRINT_XOR) >>> 0);
  return out;
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

export interface StunServerStats {
  requests: number;
  responses: number;
  ignored: number;
}

/** The STUN server: one UDP socket (IPv4, or dual-stack when bound to ::). */
export class StunServer {
  private socket: Socket | null = null;
  readonly stats: StunServerStats = { requests: 0, responses: 0, ignored: 0 };

  /** Bind to `host:port` (port 0 picks one); resolves to the bound port. */
  async listen(port: number, host = "0.0.0.0"): Promise<number> {
    const socket = createSocket({ type: host.includes(":") ? "udp6" : "udp4", reuseAddr: false });
    socket.on("message", (msg, rinfo) => {
      const h = parseStunHeader(msg);
      if (!h || h.type !== BINDING_REQUEST) {
        this.stats.ignored++;
        return;
      }
      this.stats.requests++;
      socket.send(
        bindingResponse(h.transactionId, rinfo.address, rinfo.port),
        rinfo.port,
        rinfo.address,
        (err) => {
          if (!err) this.stats.responses++;
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(port, host, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    socket.on("error", () => {
      // A send to an unreachable client must not take the server down.
    });
    this.socket = socket;
    return socket.address().port;
  }

  close(): Promise<void> {
    const s = this.socket;
    this.socket = null;
    return new Promise((resolve) => (s ? s.close(() => resolve()) : resolve()));
  }
}
