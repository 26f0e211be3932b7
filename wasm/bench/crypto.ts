// npm run bench -- crypto [--json]
// WireGuard transport AEAD (ChaCha20-Poly1305, 1420-byte and 64 KiB messages):
// Trellis's WASM module against node:crypto, @noble/ciphers and libsodium's WASM
// build, all measured in this run on this machine.
import { createCipheriv, createDecipheriv } from "node:crypto";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import sodium from "libsodium-wrappers";
import { TAG_LEN, WireGuardDevice, nodeBindings } from "../ts/node";
import { measure, report, type Figures } from "../../scripts/lib/bench";

const json = process.argv.includes("--json");
const key = new Uint8Array(32).map((_, i) => i * 7 + 1);

function nonceFor(counter: number): Uint8Array {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setUint32(4, counter >>> 0, true);
  return n;
}

type Impl = {
  name: string;
  seal(size: number): () => number;
  open(size: number): () => number;
};

// Each factory returns a closure doing one unit of work and returning the
// plaintext bytes it processed, so the harness can compute MB/s.
function wasmImpl(variant: "simd" | "plain"): Impl {
  const { TransportKey } = nodeBindings(variant);
  return {
    name: `wasm_${variant}`,
    seal(size) {
      const k = new TransportKey(key);
      // Batches amortise the JS/WASM crossing, as the packet pump will.
      const count = size <= 2048 ? 64 : 1;
      const buf = new Uint8Array((size + TAG_LEN) * count);
      let ctr = 0n;
      return () => {
        k.seal_batch(ctr, buf, size, count);
        ctr += BigInt(count);
        return size * count;
      };
    },
    open(size) {
      const k = new TransportKey(key);
      const count = size <= 2048 ? 64 : 1;
      const stride = size + TAG_LEN;
      const sealed = new Uint8Array(stride * count);
      k.seal_batch(0n, sealed, size, count);
      const buf = new Uint8Array(sealed.length);
      return () => {
        buf.set(sealed);
        if (k.open_batch(0n, buf, stride, count) !== count) throw new Error("wasm open failed");
        return size * count;
      };
    },
  };
}

const impls: Impl[] = [
  wasmImpl("simd"),
  wasmImpl("plain"),
  {
    name: "node_crypto",
    seal(size) {
      const pt = new Uint8Array(size);
      let ctr = 0;
      return () => {
        const c = createCipheriv("chacha20-poly1305", key, nonceFor(ctr++), { authTagLength: 16 });
        c.update(pt);
        c.final();
        c.getAuthTag();
        return size;
      };
    },
    open(size) {
      const pt = new Uint8Array(size);
      const c = createCipheriv("chacha20-poly1305", key, nonceFor(0), { authTagLength: 16 });
      const ct = Buffer.concat([c.update(pt), c.final()]);
      const tag = c.getAuthTag();
      return () => {
        const d = createDecipheriv("chacha20-poly1305", key, nonceFor(0), { authTagLength: 16 });
        d.setAuthTag(tag);
        d.update(ct);
        d.final();
        return size;
      };
    },
  },
  {
    name: "noble",
    seal(size) {
      const pt = new Uint8Array(size);
      let ctr = 0;
      return () => {
        chacha20poly1305(key, nonceFor(ctr++)).encrypt(pt);
        return size;
      };
    },
    open(size) {
      const ct = chacha20poly1305(key, nonceFor(0)).encrypt(new Uint8Array(size));
      return () => {
        chacha20poly1305(key, nonceFor(0)).decrypt(ct);
        return size;
      };
    },
  },
  {
    name: "libsodium",
    seal(size) {
      const pt = new Uint8Array(size);
      let ctr = 0;
      return () => {
        sodium.crypto_aead_chacha20poly1305_ietf_encrypt(pt, null, null, nonceFor(ctr++), key);
        return size;
      };
    },
    open(size) {
      const ct = sodium.crypto_aead_chacha20poly1305_ietf_encrypt(
        new Uint8Array(size),
        null,
        null,
        nonceFor(0),
        key,
      );
      return () => {
        sodium.crypto_aead_chacha20poly1305_ietf_decrypt(null, ct, null, nonceFor(0), key);
        return size;
      };
    },
  },
];

await sodium.ready;
const figures: Figures = {};
for (const size of [1420, 65536]) {
  for (const impl of impls) {
    figures[`${impl.name}_${size}_MBps`] = measure(impl.seal(size)).mbps;
    figures[`${impl.name}_${size}_open_MBps`] = measure(impl.open(size)).mbps;
  }
}

/**
 * Complete WireGuard handshakes per second through the WASM device: A's
 * initiation, B's response, A's confirmation. Each round moves the clock past
 * REJECT_AFTER_TIME, so the next packet needs a new session.
 */
function handshakesPerSecond(): number {
  const a = new WireGuardDevice(new Uint8Array(32).fill(1));
  const b = new WireGuardDevice(new Uint8Array(32).fill(2));
  a.upsertPeer({ publicKey: b.publicKey, allowedIps: ["100.64.0.2/32"], endpoint: 1 });
  b.upsertPeer({ publicKey: a.publicKey, allowedIps: ["100.64.0.1/32"] });
  const packet = new Uint8Array(28);
  packet.set([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 100, 64, 0, 1, 100, 64, 0, 2]);
  let now = 1_700_000_000_000;
  const one = (): number => {
    now += 181_000;
    const init = a.send(packet, now).find((o) => o.kind === "datagram");
    const resp = b.receive(init!.data, 2, now).find((o) => o.kind === "datagram");
    const data = a.receive(resp!.data, 1, now).find((o) => o.kind === "datagram");
    if (!data) throw new Error("handshake did not complete");
    return 0;
  };
  return measure(one).opsPerSec;
}
figures.handshakes_per_s = handshakesPerSecond();
for (const size of [1420, 65536]) {
  for (const v of ["simd", "plain"]) {
    const wasm = figures[`wasm_${v}_${size}_MBps`] as number;
    figures[`ratio_wasm_${v}_vs_libsodium_${size}`] = wasm / (figures[`libsodium_${size}_MBps`] as number);
    figures[`ratio_wasm_${v}_vs_noble_${size}`] = wasm / (figures[`noble_${size}_MBps`] as number);
    figures[`ratio_wasm_${v}_vs_node_crypto_${size}`] =
      wasm / (figures[`node_crypto_${size}_MBps`] as number);
  }
}
report("crypto", figures, json);
