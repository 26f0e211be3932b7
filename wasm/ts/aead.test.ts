import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { describe, expect, it } from "vitest";
import { TAG_LEN, nodeBindings, simdSupported } from "./node";

// Interop: WASM transport encryption must match two independent
// implementations byte for byte, with WireGuard's nonce layout.
function wgNonce(counter: bigint): Uint8Array {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setBigUint64(4, counter, true);
  return n;
}

// V8 in Node 20 runs SIMD128, so both builds are exercised here.
describe.each(["simd", "plain"] as const)("WASM transport AEAD (%s build)", (variant) => {
  const { TransportKey } = nodeBindings(variant);
  const key = new Uint8Array(randomBytes(32));
  const wasm = new TransportKey(key);

  it("is the build it claims to be", () => {
    expect(simdSupported()).toBe(true);
    expect(TransportKey.simd()).toBe(variant === "simd");
  });

  it.each([0, 1, 15, 63, 64, 65, 255, 256, 257, 1420, 4096, 65535])(
    "matches node:crypto and @noble/ciphers for %i bytes",
    (size) => {
      const pt = new Uint8Array(randomBytes(size));
      const counter = 0x0102030405n + BigInt(size);
      const sealed = wasm.seal(counter, pt);
      const c = createCipheriv("chacha20-poly1305", key, wgNonce(counter), { authTagLength: 16 });
      const ref = Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]);
      expect(Buffer.from(sealed).equals(ref)).toBe(true);
      expect(chacha20poly1305(key, wgNonce(counter)).encrypt(pt)).toEqual(sealed);
      const d = createDecipheriv("chacha20-poly1305", key, wgNonce(counter), { authTagLength: 16 });
      d.setAuthTag(sealed.subarray(size));
      expect(Buffer.concat([d.update(sealed.subarray(0, size)), d.final()]).equals(Buffer.from(pt))).toBe(
        true,
      );
      expect(wasm.open(counter, sealed)).toEqual(pt);
    },
  );

  it("refuses a tampered message, a wrong counter and a wrong-size key", () => {
    const sealed = wasm.seal(7n, new Uint8Array([1, 2, 3]));
    expect(() => wasm.open(8n, sealed)).toThrow(/authentication failed/);
    sealed[0]! ^= 0x80;
    expect(() => wasm.open(7n, sealed)).toThrow(/authentication failed/);
    expect(() => new TransportKey(new Uint8Array(31))).toThrow(/32 bytes/);
  });

  it("seals a batch in one call, identical to one-by-one", () => {
    const len = 1420;
    const stride = len + TAG_LEN;
    const buf = new Uint8Array(stride * 4);
    for (let i = 0; i < 4; i++) buf.fill(i + 1, i * stride, i * stride + len);
    wasm.seal_batch(100n, buf, len, 4);
    for (let i = 0; i < 4; i++) {
      expect(buf.subarray(i * stride, (i + 1) * stride)).toEqual(
        wasm.seal(100n + BigInt(i), new Uint8Array(len).fill(i + 1)),
      );
    }
    expect(wasm.open_batch(100n, buf, stride, 4)).toBe(4);
    expect(() => wasm.seal_batch(0n, new Uint8Array(10), len, 1)).toThrow(/too small/);
  });
});
