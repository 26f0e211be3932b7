// Bad input to the STUN codec, as tables of generated cases (fast-check):
// any datagram, and real Binding responses with bytes flipped, cut short or
// extended. The codec answers null or a well-formed address; it never throws
// and never reads outside the datagram.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fuzzRuns, recordCases } from "./fuzz";
import { isIP } from "node:net";
import {
  BINDING_SUCCESS,
  HEADER_LEN,
  STUN_MAGIC_COOKIE,
  parseBindingResponse,
  parseStunHeader,
} from "./stun";

/** A Binding success: a SOFTWARE attribute holding `software`, then XOR-MAPPED-ADDRESS (IPv4). */
function response(txid: Uint8Array, software: Uint8Array): Uint8Array {
  const extra = new Uint8Array(4 + software.length);
  new DataView(extra.buffer).setUint16(0, 0x8022);
  new DataView(extra.buffer).setUint16(2, software.length);
  extra.set(software, 4);
  const attr = new Uint8Array(12);
  const dv = new DataView(attr.buffer);
  dv.setUint16(0, 0x0020);
  dv.setUint16(2, 8);
  attr[5] = 1;
  dv.setUint16(6, 41641 ^ (STUN_MAGIC_COOKIE >>> 16));
  dv.setUint32(8, 0xc0000201 ^ STUN_MAGIC_COOKIE);
  const pad = (4 - (extra.length % 4)) % 4;
  const body = new Uint8Array(extra.length + pad + attr.length);
  body.set(extra);
  body.set(attr, extra.length + pad);
  const out = new Uint8Array(HEADER_LEN + body.length);
  const h = new DataView(out.buffer);
  h.setUint16(0, BINDING_SUCCESS);
  h.setUint16(2, body.length);
  h.setUint32(4, STUN_MAGIC_COOKIE);
  out.set(txid, 8);
  out.set(body, HEADER_LEN);
  return out;
}

function wellFormed(r: { address: string; port: number } | null): void {
  if (r === null) return;
  expect(isIP(r.address)).not.toBe(0);
  expect(r.port).toBeGreaterThanOrEqual(0);
  expect(r.port).toBeLessThan(65536);
}

describe("STUN codec on bad input", () => {
  it("any datagram: null or a well-formed address, never a throw", () => {
    const runs = fuzzRuns(2000);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (d) => {
        parseStunHeader(d);
        wellFormed(parseBindingResponse(d));
      }),
      { numRuns: runs },
    );
    recordCases("bad input", "STUN datagrams", runs);
  });

  it("real responses mutated: flipped bytes, cut short, lengths that lie", () => {
    const runs = fuzzRuns(2000);
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.uint8Array({ maxLength: 40 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        fc.nat(),
        (txid, extra, flips, cut) => {
          const d = response(txid, extra);
          expect(parseBindingResponse(d)).toEqual({ address: "192.0.2.1", port: 41641 });
          for (const [at, v] of flips) d[at % d.length] = v;
          wellFormed(parseBindingResponse(d));
          wellFormed(parseBindingResponse(d.subarray(0, cut % (d.length + 1))));
        },
      ),
      { numRuns: runs },
    );
    recordCases("bad input", "STUN responses mutated", runs);
  });
});
