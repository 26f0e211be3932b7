// Signing of control requests by proof of possession of the node key (the
// `Authorization: Trellis-Node …` scheme of @trellis/proto). Browser-safe:
// @noble's X25519, SHA-256 and HMAC, so the browser node and the gateway
// share it. The private key stays inside this object.
import { x25519 } from "@noble/curves/ed25519.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, randomBytes, utf8ToBytes } from "@noble/hashes/utils.js";
import { decodeKey, encodeKey, formatNodeAuth, nodeAuthMessage } from "@trellis/proto";

export class ControlSigner {
  private readonly macKey: Uint8Array;
  /** This node's key in wire form, `nodekey:<hex>`. */
  readonly nodeKey: string;

  /**
   * @param privateKey the node's X25519 private key (32 bytes)
   * @param controlKey the control server's public key, `controlkey:<hex>` (from `GET /api/v1/key`)
   */
  constructor(privateKey: Uint8Array, controlKey: string) {
    const shared = x25519.getSharedSecret(privateKey, decodeKey("controlkey", controlKey));
    this.macKey = sha256(shared);
    shared.fill(0);
    this.nodeKey = encodeKey("nodekey", x25519.getPublicKey(privateKey));
  }

  /**
   * The Authorization header value for one request. `path` is the request
   * target exactly as sent (path and query); `body` the exact bytes sent.
   */
  sign(method: string, path: string, body: string | Uint8Array = "", nowMs = Date.now()): string {
    const bytes = typeof body === "string" ? utf8ToBytes(body) : body;
    const bodyHash = bytesToHex(sha256(bytes));
    const ts = Math.floor(nowMs / 1000);
    // A fresh nonce per request: the server refuses a MAC it has seen, and
    // identical requests signed in one second (by this signer or another
    // holder of the key) must not look like replays of each other.
    const nonce = bytesToHex(randomBytes(16));
    const message = nodeAuthMessage(method, path, ts, nonce, bodyHash);
    const mac = bytesToHex(hmac(sha256, this.macKey, utf8ToBytes(message)));
    return formatNodeAuth({ key: this.nodeKey, ts, nonce, mac });
  }
}

/**
 * A NodeKeyHolder over a private key held in memory (gateways hand it over
 * from their key file, tests make one). Browser identities implement the
 * same interface without giving the key out.
 */
export function keyHolder(privateKey: Uint8Array): {
  publicKey: string;
  signer(controlKey: string): ControlSigner;
} {
  const publicKey = encodeKey("nodekey", x25519.getPublicKey(privateKey));
  return { publicKey, signer: (controlKey) => new ControlSigner(privateKey, controlKey) };
}
