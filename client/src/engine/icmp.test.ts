import { describe, expect, it } from "vitest";
import { echoRequest, parseEchoReply } from "./icmp";

/** The Internet checksum over `buf` (0 when a filled-in checksum is right). */
function verify(buf: Uint8Array, start = 0): number {
  let sum = start;
  for (let i = 0; i < buf.length; i += 2) sum += (buf[i]! << 8) | (buf[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Turn a request into the reply a kernel would send (swap addresses, set the type). */
function reply(req: Uint8Array): Uint8Array {
  const r = req.slice();
  if (r[0]! >> 4 === 4) {
    r.set(req.subarray(16, 20), 12);
    r.set(req.subarray(12, 16), 16);
    r[20] = 0;
  } else {
    r.set(req.subarray(24, 40), 8);
    r.set(req.subarray(8, 24), 24);
    r[40] = 129;
  }
  return r;
}

describe("ICMP echo for engines without a stack", () => {
  it("builds IPv4 echo requests with valid checksums and reads their replies", () => {
    const req = echoRequest(
      Uint8Array.of(100, 64, 0, 1),
      Uint8Array.of(100, 64, 0, 2),
      0x1234,
      7,
      new Uint8Array(5),
    );
    expect(req.length).toBe(33);
    expect(verify(req.subarray(0, 20))).toBe(0);
    expect(verify(req.subarray(20))).toBe(0);
    expect(parseEchoReply(req)).toBeNull(); // a request is not a reply
    expect(parseEchoReply(reply(req))).toEqual({ ident: 0x1234, seq: 7, from: Uint8Array.of(100, 64, 0, 2) });
  });

  it("builds ICMPv6 echo requests whose checksum covers the pseudo-header", () => {
    const src = new Uint8Array(16);
    const dst = new Uint8Array(16);
    src.set([0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0]);
    dst.set(src);
    src[15] = 1;
    dst[15] = 2;
    const req = echoRequest(src, dst, 9, 65535, Uint8Array.of(1, 2, 3));
    const pseudo = new Uint8Array(40);
    pseudo.set(src, 0);
    pseudo.set(dst, 16);
    pseudo[35] = req.length - 40;
    pseudo[39] = 58;
    let start = 0;
    for (let i = 0; i < 40; i += 2) start += (pseudo[i]! << 8) | pseudo[i + 1]!;
    expect(verify(req.subarray(40), start)).toBe(0);
    expect(parseEchoReply(reply(req))).toEqual({ ident: 9, seq: 65535, from: dst });
  });

  it("refuses mixed address families", () => {
    expect(() => echoRequest(new Uint8Array(4), new Uint8Array(16), 1, 1, new Uint8Array())).toThrow(
      RangeError,
    );
  });
});
