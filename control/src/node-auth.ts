// Verification of the `Authorization: Trellis-Node …` scheme (proto/src/nodeauth.ts):
// a node proves on every request that it holds the private half of its node
// key, without any bearer secret. Both sides derive the same MAC key from
// X25519 — the node from its private key and the control server's public key,
// the server from its private key and the node's public key — so only the
// holder of the node's private key (or of the server's) can produce a MAC.
import {
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  timingSafeEqual,
} from "node:crypto";
import type { KeyObject } from "node:crypto";
import {
  NODE_AUTH_MAX_SKEW_S,
  ROTATION_PROOF,
  decodeKey,
  encodeKey,
  nodeAuthMessage,
  parseNodeAuth,
} from "@trellis/proto";
import { ControlError } from "./errors";

/** A request as the verifier needs it; `path` is the request target (path and query). */
export interface SignedRequest {
  method: string;
  path: string;
  authorization: string | null;
  body: string | Uint8Array;
}

/** A request whose signature holds. */
export interface VerifiedRequest {
  nodeKey: string;
  /** The MAC (hex), unique per request. */
  mac: string;
  /** Unix second from which the request fails the clock-skew check anyway. */
  until: number;
}

export interface NodeAuthOptions {
  /** Clock in milliseconds (tests). */
  now?: () => number;
  /** Derived keys kept in memory, so a busy node costs one X25519 per key, not per request. */
  maxCachedKeys?: number;
  /** MACs remembered to refuse replays; beyond this, requests are refused rather than risk accepting one. */
  maxReplayEntries?: number;
  /** MACs remembered per node key: one key (a registered node, or a key someone made) cannot fill the cache. */
  maxReplayEntriesPerKey?: number;
  /**
   * Of maxReplayEntries, how many may be registrations of keys not yet
   * registered: keys anyone can make, which can then only ever crowd out
   * other new registrations, never requests of registered nodes.
   */
  maxNewKeyEntries?: number;
}

/** Whose request a remembered MAC is: a registered node's, or a registration of a key not yet known. */
export type ReplayPool = "node" | "new";

// DER wrappers turning raw 32-byte X25519 keys into KeyObjects (RFC 8410).
const PKCS8_X25519 = Buffer.from("302e020100300506032b656e04220420", "hex");
const SPKI_X25519 = Buffer.from("302a300506032b656e032100", "hex");

function unauthorized(code: string, message: string): ControlError {
  return new ControlError(code, 401, message);
}

export class NodeAuthenticator {
  private readonly privateKey: KeyObject;
  private readonly keyCache = new Map<string, Buffer>();
  /** mac → when it can no longer be replayed (unix second) and whose it is. Insertion order ≈ time order. */
  private readonly seen = new Map<string, { until: number; nodeKey: string; pool: ReplayPool }>();
  private readonly inPool: Record<ReplayPool, number> = { node: 0, new: 0 };
  /** node key → how many of its MACs `seen` holds. */
  private readonly seenPerKey = new Map<string, number>();
  private readonly now: () => number;
  private readonly maxCachedKeys: number;
  private readonly maxReplayEntries: number;
  private readonly maxReplayEntriesPerKey: number;
  private readonly maxNewKeyEntries: number;
  /**
   * The second this authenticator was made in. MACs are remembered in
   * memory only (on SQLite nothing else does), so a request signed before a
   * restart could be replayed to the new process inside its window:
   * timestamps before this second are refused. (A node whose clock is d
   * seconds behind is refused for the first d seconds after a restart.)
   */
  private readonly startS: number;
  readonly publicKey: string;

  constructor(keys: { privateKey: Uint8Array; publicKey: Uint8Array }, opts: NodeAuthOptions = {}) {
    this.privateKey = createPrivateKey({
      key: Buffer.concat([PKCS8_X25519, keys.privateKey]),
      format: "der",
      type: "pkcs8",
    });
    this.publicKey = encodeKey("controlkey", keys.publicKey);
    this.now = opts.now ?? Date.now;
    this.maxCachedKeys = opts.maxCachedKeys ?? 50_000;
    this.maxReplayEntries = opts.maxReplayEntries ?? 500_000;
    this.maxReplayEntriesPerKey = opts.maxReplayEntriesPerKey ?? 2_000;
    this.maxNewKeyEntries = opts.maxNewKeyEntries ?? 20_000;
    this.startS = Math.floor(this.now() / 1000);
  }

  /** SHA-256(X25519(control_private, node_public)), cached per node key. */
  private macKey(nodeKey: string): Buffer {
    let key = this.keyCache.get(nodeKey);
    if (key) {
      // Refresh recency: Map iteration order doubles as an LRU list.
      this.keyCache.delete(nodeKey);
      this.keyCache.set(nodeKey, key);
      return key;
    }
    const pub = createPublicKey({
      key: Buffer.concat([SPKI_X25519, decodeKey("nodekey", nodeKey)]),
      format: "der",
      type: "spki",
    });
    let shared: Buffer;
    try {
      shared = diffieHellman({ privateKey: this.privateKey, publicKey: pub });
    } catch {
      // OpenSSL refuses low-order points (an all-zero shared secret).
      throw unauthorized("bad_node_key", "the node key is not a usable X25519 public key");
    }
    if (shared.every((b) => b === 0)) {
      throw unauthorized("bad_node_key", "the node key is not a usable X25519 public key");
    }
    key = createHash("sha256").update(shared).digest();
    this.keyCache.set(nodeKey, key);
    if (this.keyCache.size > this.maxCachedKeys) {
      this.keyCache.delete(this.keyCache.keys().next().value!);
    }
    return key;
  }

  private pruneSeen(nowS: number): void {
    for (const [mac, entry] of this.seen) {
      if (entry.until > nowS) break;
      this.seen.delete(mac);
      this.inPool[entry.pool] -= 1;
      const n = (this.seenPerKey.get(entry.nodeKey) ?? 1) - 1;
      if (n > 0) this.seenPerKey.set(entry.nodeKey, n);
      else this.seenPerKey.delete(entry.nodeKey);
    }
  }

  /**
   * Check a request's signature and that it was not used before; returns the
   * node key it proves possession of. Throws a 401 ControlError for a missing
   * or malformed header, a timestamp outside ±60 s (or before this process
   * started), a wrong MAC or a replay.
   */
  verify(req: SignedRequest): string {
    const checked = this.checkSignature(req);
    this.remember(checked, "node");
    return checked.nodeKey;
  }

  /**
   * Refuse a replay, then remember the request's MAC until it leaves the
   * window. Callers check first that the key deserves the memory (a
   * registered node, or a registration), so keys anyone can make cannot
   * fill the cache; each key holds at most `maxReplayEntriesPerKey`, and
   * registrations of new keys (`pool` "new") at most `maxNewKeyEntries`.
   */
  remember(checked: VerifiedRequest, pool: ReplayPool): void {
    const nowS = Math.floor(this.now() / 1000);
    this.pruneSeen(nowS);
    if (this.seen.has(checked.mac)) {
      throw unauthorized("replayed_request", "this signed request was already used");
    }
    const ofKey = this.seenPerKey.get(checked.nodeKey) ?? 0;
    if (ofKey >= this.maxReplayEntriesPerKey) {
      throw new ControlError(
        "busy",
        503,
        "too many signed requests from this node key in the last minute; retry shortly",
      );
    }
    if (
      this.seen.size >= this.maxReplayEntries ||
      (pool === "new" && this.inPool.new >= this.maxNewKeyEntries)
    ) {
      throw new ControlError("busy", 503, "too many signed requests in the last minute; retry shortly");
    }
    this.seen.set(checked.mac, { until: checked.until, nodeKey: checked.nodeKey, pool });
    this.inPool[pool] += 1;
    this.seenPerKey.set(checked.nodeKey, ofKey + 1);
  }

  /**
   * The signature check alone: the node key a request proves, its MAC and
   * until when it could be replayed. Remembers nothing: follow with
   * {@link remember} (and, across replicas, replay.ts) before acting on it.
   */
  checkSignature(req: SignedRequest): VerifiedRequest {
    const auth = parseNodeAuth(req.authorization);
    if (!auth) {
      throw unauthorized(
        "unauthorized",
        "missing or malformed Authorization header; expected: Trellis-Node key=nodekey:<hex>, ts=<unix>, nonce=<32 hex>, mac=<hex>",
      );
    }
    const nowS = Math.floor(this.now() / 1000);
    if (Math.abs(auth.ts - nowS) > NODE_AUTH_MAX_SKEW_S) {
      throw unauthorized(
        "stale_request",
        `request timestamp differs from the server's clock by more than ${NODE_AUTH_MAX_SKEW_S} s`,
      );
    }
    if (auth.ts < this.startS) {
      throw unauthorized("stale_request", "request signed before the control server started; sign it again");
    }
    const bodyHash = createHash("sha256").update(req.body).digest("hex");
    const expected = createHmac("sha256", this.macKey(auth.key))
      .update(nodeAuthMessage(req.method, req.path, auth.ts, auth.nonce, bodyHash))
      .digest();
    if (!timingSafeEqual(expected, Buffer.from(auth.mac, "hex"))) {
      throw unauthorized("bad_signature", "the request signature does not match the node key");
    }
    // Remembered until the timestamp leaves the window; later it fails the skew check instead.
    const until = Math.max(auth.ts, nowS) + NODE_AUTH_MAX_SKEW_S + 1;
    return { nodeKey: auth.key, mac: auth.mac, until };
  }

  /**
   * Check a key rotation's proof that the signer also holds `oldKey`: an
   * Authorization value made with the old key over method `ROTATE`, path
   * `/api/v1/register` and the new key's text as body (ROTATION_PROOF), so
   * it is bound to this control server, to the new key and to the ±60 s
   * window, and can be used once. Throws 401 `bad_rotation_proof`.
   */
  verifyRotation(oldKey: string, signature: string, newKey: string): void {
    const auth = parseNodeAuth(signature);
    if (!auth || auth.key !== oldKey) {
      throw unauthorized(
        "bad_rotation_proof",
        "rotateFrom.signature must be a Trellis-Node authorization made with rotateFrom.nodeKey",
      );
    }
    try {
      this.verify({ ...ROTATION_PROOF, authorization: signature, body: newKey });
    } catch (err) {
      if (ControlError.is(err) && err.status === 401) {
        throw unauthorized("bad_rotation_proof", `key rotation proof refused: ${err.message}`);
      }
      throw err;
    }
  }
}
