// The `Authorization: Trellis-Node …` scheme by which a node proves, on every
// control request, that it holds the private half of its node key. Only the
// text forms live here (bundle-safe, no crypto): the signer is in
// @trellis/client, the verifier in @trellis/control.
//
//   key     = SHA-256(X25519(node_private, control_public))   (= X25519(control_private, node_public))
//   message = METHOD "\n" path "\n" unix_ts "\n" nonce "\n" hex(SHA-256(body))
//   mac     = HMAC-SHA256(key, message)
//   Authorization: Trellis-Node key=nodekey:<64 hex>, ts=<unix seconds>, nonce=<32 hex>, mac=<64 hex>
//
// The nonce (16 random bytes per request) makes every signature distinct, so
// the server's refusal of a MAC it has seen refuses only true replays: two
// signers of one key (a browser's previous worker and its new one, a page and
// its worker) sending the identical request in the same second no longer
// collide.

/** Name of the scheme in the Authorization header. */
export const NODE_AUTH_SCHEME = "Trellis-Node";

/** Largest accepted difference between a request's timestamp and the server's clock, in seconds. */
export const NODE_AUTH_MAX_SKEW_S = 60;

/** SHA-256 of the empty string: the body hash of a request without a body. */
export const EMPTY_BODY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

export interface NodeAuthFields {
  /** `nodekey:<64 hex>` */
  key: string;
  /** Unix time in seconds. */
  ts: number;
  /** 16 random bytes as 32 lowercase hex digits, fresh for every request. */
  nonce: string;
  /** HMAC-SHA256 as 64 lowercase hex digits. */
  mac: string;
}

/**
 * The signed message. `path` is the request target as sent (path and query),
 * so a signed request cannot be replayed against another endpoint or with
 * other parameters; `method` is upper case.
 */
export function nodeAuthMessage(
  method: string,
  path: string,
  ts: number,
  nonce: string,
  bodySha256Hex: string,
): string {
  return `${method.toUpperCase()}\n${path}\n${ts}\n${nonce}\n${bodySha256Hex}`;
}

export function formatNodeAuth(f: NodeAuthFields): string {
  return `${NODE_AUTH_SCHEME} key=${f.key}, ts=${f.ts}, nonce=${f.nonce}, mac=${f.mac}`;
}

const HEADER =
  /^Trellis-Node key=(nodekey:[0-9a-f]{64}), ts=(\d{1,12}), nonce=([0-9a-f]{32}), mac=([0-9a-f]{64})$/;

/** Parse the header value; null when it is not exactly this scheme's form. */
export function parseNodeAuth(header: string | null | undefined): NodeAuthFields | null {
  if (!header || header.length > 256) return null;
  const m = HEADER.exec(header.trim());
  if (!m) return null;
  return { key: m[1]!, ts: Number(m[2]), nonce: m[3]!, mac: m[4]! };
}
