import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { x25519 } from "@noble/curves/ed25519.js";
import { KeyFormatError, decodeKey, encodeKey } from "../keys";

// Node-only (file system): import as "@trellis/proto/keyfile", never from browser code.

/** An X25519 key pair: a node's WireGuard static key or a relay's server key. */
export interface KeyPair {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

export function generateKeyPair(): KeyPair {
  const privateKey = x25519.utils.randomSecretKey();
  return { privateKey, publicKey: x25519.getPublicKey(privateKey) };
}

/**
 * Load a private key from `path`, creating it (mode 0600, never overwriting) on
 * first use. A file readable by group or others is refused: the private key
 * must never leave its owner.
 */
export function loadOrCreateKeyFile(path: string): KeyPair {
  if (existsSync(path)) {
    const mode = statSync(path).mode & 0o777;
    if (mode & 0o077) {
      throw new KeyFormatError(`${path} has mode ${mode.toString(8)}; private keys must be 0600`);
    }
    const privateKey = decodeKey("privkey", readFileSync(path, "utf8").trim());
    return { privateKey, publicKey: x25519.getPublicKey(privateKey) };
  }
  const pair = generateKeyPair();
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, encodeKey("privkey", pair.privateKey) + "\n", { mode: 0o600, flag: "wx" });
  chmodSync(path, 0o600);
  return pair;
}
