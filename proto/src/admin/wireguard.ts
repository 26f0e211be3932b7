// Plain WireGuard peers (wg-quick, wireguard-go, the phones' WireGuard apps):
// machines that speak no Trellis protocol and reach the tailnet through a
// gateway. The admin API creates one from its public key; the console makes
// that key pair in the browser or takes a pasted public key, and fills the
// private key into the wg-quick file itself — the server never sees it.
// Bundle-safe (the console renders the file with the same function).
import { x25519 } from "@noble/curves/ed25519.js";
import { z } from "zod";
import { DnsLabelText } from "./admin";
import { TagText } from "./keys";

/** wg(8)'s key text: standard base64 of 32 bytes, 44 characters, canonical. */
const WG_KEY_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

export class WireGuardKeyError extends Error {
  override readonly name = "WireGuardKeyError";
}

/** The 32 bytes of a wg(8) key text; throws WireGuardKeyError for anything else. */
export function wgKeyBytes(text: string): Uint8Array {
  if (!WG_KEY_RE.test(text)) {
    throw new WireGuardKeyError(
      "must be a WireGuard key: 44 characters of base64 (32 bytes), as wg(8) prints",
    );
  }
  const bin = atob(text);
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** wg(8)'s text of a 32-byte key. */
export function wgKeyText(key: Uint8Array): string {
  if (key.length !== 32) throw new WireGuardKeyError(`a WireGuard key is 32 bytes, got ${key.length}`);
  let bin = "";
  for (const b of key) bin += String.fromCharCode(b);
  return btoa(bin);
}

/**
 * A new WireGuard key pair in wg(8)'s text, made here (the console makes one
 * in the admin's browser: only the public half is ever sent).
 */
export function generateWireGuardKeyPair(): { privateKey: string; publicKey: string } {
  const secret = x25519.utils.randomSecretKey();
  return { privateKey: wgKeyText(secret), publicKey: wgKeyText(x25519.getPublicKey(secret)) };
}

/** A clamped scalar: its product with a point of small order is the zero point. */
const PROBE_SCALAR = new Uint8Array(32).fill(0x5a);

/**
 * Whether `key` is a public key a handshake can use: a point whose product
 * with a clamped scalar is not zero (the all-zero key and the other points
 * of small order give every peer the same shared secret, which WireGuard
 * refuses).
 */
export function usableX25519Public(key: Uint8Array): boolean {
  try {
    const shared = x25519.getSharedSecret(PROBE_SCALAR, key);
    return shared.some((b) => b !== 0);
  } catch {
    return false;
  }
}

/** A WireGuard public key as wg(8) writes it (base64), checked to be a usable X25519 point. */
export const WireGuardPublicKeyText = z.string().superRefine((text, ctx) => {
  let key: Uint8Array;
  try {
    key = wgKeyBytes(text);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message });
    return;
  }
  if (!usableX25519Public(key)) {
    ctx.addIssue({ code: "custom", message: "is not a usable X25519 public key (a point of small order)" });
  }
});

/** `POST /api/v1/machines/wireguard`: a plain WireGuard peer that reaches the tailnet through `gatewayId`. */
export const CreateWireGuardPeerRequest = z.strictObject({
  name: DnsLabelText,
  /** The gateway it goes through: a machine that publishes a UDP endpoint (a `trellis up` gateway). */
  gatewayId: z.string().min(1).max(64),
  publicKey: WireGuardPublicKeyText,
  /** Tagged: owned by the tags (each in the policy's tagOwners). Otherwise owned by `userId`, or the caller. */
  tags: z.array(TagText).max(32).optional(),
  userId: z.string().min(1).max(64).optional(),
});
export type CreateWireGuardPeerRequest = z.infer<typeof CreateWireGuardPeerRequest>;

/**
 * `?endpoint=host:port`: the gateway endpoint the file names, instead of the
 * first one the gateway published; `?exitNode=true`: the file sends all the
 * peer's traffic through the gateway (an approved exit node the policy lets
 * the peer use).
 */
export const WireGuardConfigQuery = z.object({
  exitNode: z.enum(["true", "false"], { message: 'must be "true" or "false"' }).optional(),
  endpoint: z
    .string()
    .max(260)
    .regex(
      /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/,
      'must be "host:port" (an IPv6 address in brackets)',
    )
    .refine((e) => {
      const port = Number(e.slice(e.lastIndexOf(":") + 1));
      return port >= 1 && port <= 65535;
    }, "the port must be 1-65535")
    .optional(),
});
export type WireGuardConfigQuery = z.infer<typeof WireGuardConfigQuery>;

/** What a wg-quick file for a plain WireGuard peer holds, without its private key. */
export const WireGuardPeerConfig = z.object({
  machineId: z.string(),
  /** The machine's name (and a good interface name for wg-quick). */
  name: z.string(),
  /** The peer's public key (base64). */
  publicKey: z.string(),
  /** Its tailnet addresses, /32 and /128. */
  addresses: z.array(z.string()),
  gateway: z.object({
    id: z.string(),
    name: z.string(),
    /** The gateway's WireGuard public key (base64). */
    publicKey: z.string(),
    /** The UDP endpoint the file names. */
    endpoint: z.string().nullable(),
    /** Every UDP endpoint the gateway published (choices for `?endpoint=`). */
    endpoints: z.array(z.string()),
  }),
  /**
   * The tailnet's ranges and the gateway's approved subnet routes the policy
   * lets this peer reach; with `?exitNode=true`, the exit routes too.
   */
  allowedIPs: z.array(z.string()),
  /**
   * The exit routes the gateway offers this peer (it is an approved exit
   * node, and the policy lets the peer reach `autogroup:internet`):
   * `0.0.0.0/0`, `::/0`, or none.
   */
  exitRoutes: z.array(z.string()),
  persistentKeepalive: z.number().int(),
  /** The wg-quick file, with a comment where the private key goes. */
  config: z.string(),
});
export type WireGuardPeerConfig = z.infer<typeof WireGuardPeerConfig>;

export interface WgQuickInput {
  name: string;
  addresses: readonly string[];
  gatewayName: string;
  gatewayPublicKey: string;
  endpoint: string | null;
  allowedIPs: readonly string[];
  persistentKeepalive: number;
  /** The peer's own public key, named where the private key goes when that is not given. */
  publicKey: string;
  /** The private key (base64), when the caller holds it (the browser that made the pair); never the server. */
  privateKey?: string;
}

/**
 * The wg-quick(8) file of a plain WireGuard peer. Without `privateKey` the
 * PrivateKey line is a comment to replace; without an endpoint the Endpoint
 * line is one (the peer cannot start the tunnel until it is filled in).
 */
export function wgQuickConfig(c: WgQuickInput): string {
  const line = (s: string) => s.replace(/[\r\n]+/g, " ");
  const out = [
    `# Trellis: ${line(c.name)}, a plain WireGuard peer through the gateway ${line(c.gatewayName)}`,
    "[Interface]",
    c.privateKey !== undefined
      ? `PrivateKey = ${wgKeyText(wgKeyBytes(c.privateKey))}`
      : `# PrivateKey = <the private key of ${c.publicKey}; Trellis never had it>`,
    `Address = ${c.addresses.join(", ")}`,
    "",
    "[Peer]",
    `# ${line(c.gatewayName)}`,
    `PublicKey = ${c.gatewayPublicKey}`,
    c.endpoint !== null
      ? `Endpoint = ${c.endpoint}`
      : "# Endpoint = <the gateway has published no UDP endpoint>",
    `AllowedIPs = ${c.allowedIPs.join(", ")}`,
    `PersistentKeepalive = ${c.persistentKeepalive}`,
    "",
  ];
  return out.join("\n");
}

/** A wg-quick file read back: what wg(8) and ip(8) need (tests, and a check of what the console offers). */
export interface ParsedWgQuick {
  privateKey: string | null;
  addresses: string[];
  peers: {
    publicKey: string;
    endpoint: string | null;
    allowedIPs: string[];
    persistentKeepalive: number | null;
  }[];
}

/** Parse the sections and keys of a wg-quick file that matter to a tunnel; throws on what it cannot read. */
export function parseWgQuick(text: string): ParsedWgQuick {
  const out: ParsedWgQuick = { privateKey: null, addresses: [], peers: [] };
  let section: "interface" | "peer" | null = null;
  const list = (v: string) =>
    v
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const l = raw.replace(/#.*$/, "").trim();
    if (!l) continue;
    if (/^\[interface\]$/i.test(l)) {
      section = "interface";
      continue;
    }
    if (/^\[peer\]$/i.test(l)) {
      section = "peer";
      out.peers.push({ publicKey: "", endpoint: null, allowedIPs: [], persistentKeepalive: null });
      continue;
    }
    const m = /^([A-Za-z]+)\s*=\s*(.*)$/.exec(l);
    if (!m || !section) throw new Error(`line ${i + 1}: cannot read ${JSON.stringify(raw)}`);
    const key = m[1]!.toLowerCase();
    const value = m[2]!.trim();
    if (section === "interface") {
      if (key === "privatekey") out.privateKey = value;
      else if (key === "address") out.addresses.push(...list(value));
    } else {
      const p = out.peers[out.peers.length - 1]!;
      if (key === "publickey") p.publicKey = value;
      else if (key === "endpoint") p.endpoint = value;
      else if (key === "allowedips") p.allowedIPs.push(...list(value));
      else if (key === "persistentkeepalive") p.persistentKeepalive = Number(value);
    }
  }
  return out;
}
