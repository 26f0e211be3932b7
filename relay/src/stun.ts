import { createSocket, type Socket } from "node:dgram";
import { crc32 } from "node:zlib";
import { addrBytes, parseSocketAddr } from "@trellis/proto/ip";
import {
  ATTR_FINGERPRINT,
  ATTR_SOFTWARE,
  ATTR_XOR_MAPPED_ADDRESS,
  BINDING_REQUEST,
  BINDING_SUCCESS,
  FINGERPRINT_XOR,
  HEADER_LEN,
  STUN_MAGIC_COOKIE,
  parseStunHeader,
} from "@trellis/proto/stun";

// A STUN server answering RFC 8489 Binding requests with the client's address
// as the server saw it (XOR-MAPPED-ADDRESS): gateways use it to learn their
// public endpoint, browsers use it as an ICE server for server-reflexive
// candidates.

const SOFTWARE = new TextEncoder().encode("trellis");

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
