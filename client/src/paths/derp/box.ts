import { x25519 } from "@noble/curves/ed25519.js";
import { hsalsa, xsalsa20poly1305 } from "@noble/ciphers/salsa.js";
import { randomBytes } from "@noble/ciphers/utils.js";
import { NONCE_LEN } from "./frame";

// NaCl's crypto_box (Curve25519, HSalsa20, XSalsa20-Poly1305), which DERP uses
// to seal the client-info and server-info messages: built from audited noble
// primitives, checked against tweetnacl in the tests.

const SIGMA = new Uint32Array([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]); // "expand 32-byte k"

function u32(b: Uint8Array): Uint32Array {
  return new Uint32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** crypto_box_beforenm: the shared key for a (secret, public) pair. */
export function boxSharedKey(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  const dh = x25519.getSharedSecret(secretKey, publicKey);
  const out = new Uint32Array(8);
  hsalsa(SIGMA, u32(dh), new Uint32Array(4), out);
  return new Uint8Array(out.buffer);
}

/** Seal `msg` to `publicKey` from `secretKey`; returns nonce (24) followed by the box. */
export function sealBox(msg: Uint8Array, secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  return sealBoxWith(boxSharedKey(secretKey, publicKey), msg);
}

/** Open nonce-prefixed `data` from `publicKey` to `secretKey`; null when it does not authenticate. */
export function openBox(data: Uint8Array, secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array | null {
  return openBoxWith(boxSharedKey(secretKey, publicKey), data);
}

/** {@link sealBox} with the pair's shared key computed once ({@link boxSharedKey}). */
export function sealBoxWith(sharedKey: Uint8Array, msg: Uint8Array): Uint8Array {
  const nonce = randomBytes(NONCE_LEN);
  const sealed = xsalsa20poly1305(sharedKey, nonce).encrypt(msg);
  const out = new Uint8Array(NONCE_LEN + sealed.length);
  out.set(nonce);
  out.set(sealed, NONCE_LEN);
  return out;
}

/** {@link openBox} with the pair's shared key computed once. */
export function openBoxWith(sharedKey: Uint8Array, data: Uint8Array): Uint8Array | null {
  if (data.length < NONCE_LEN + 16) return null;
  try {
    return xsalsa20poly1305(sharedKey, data.subarray(0, NONCE_LEN)).decrypt(data.subarray(NONCE_LEN));
  } catch {
    return null;
  }
}
