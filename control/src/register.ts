// Registration of a node with a pre-auth key. The node key is the one the
// request was signed with (node-auth.ts), so a node registers only itself.
//
// - New key: the pre-auth key is consumed, addresses allocated and the node
//   created, all in one transaction; a unique-constraint conflict (a racing
//   registration took the same name, or the counter row was being created)
//   rolls it back and the whole transaction is retried.
// - Known, unexpired key: re-registration after a restart. Identity,
//   addresses, tags and owner are kept; hostname, OS and advertised routes
//   are refreshed; no pre-auth key use is consumed (possession of the node
//   key already proves who it is).
// - Known, expired key: a valid pre-auth key renews it, keeping the node's
//   identity, addresses and approval and taking tags and owner from the new key.
// - Rotation (`rotateFrom`): signed with a new key, proving possession of the
//   old one; the node continues under the new key and the old one is retired
//   (previousKeys). A retired key can never register again, not even with a
//   pre-auth key, so it cannot fork the node.
// - New nodes wait for an admin when the tailnet's nodeApproval is on.
import type { Database, Models } from "@trellis/db";
import { MAX_PREVIOUS_KEYS, RegisterRequest, type RegisterResponse } from "@trellis/proto";
import { allocateAddresses } from "./addresses";
import { ControlError } from "./errors";
import { isUniqueViolation, jsonList, parseOr400 } from "./errors-util";
import { identityOf } from "./node-view";
import { prefixesOverlap, TAILNET_V4, TAILNET_V6 } from "@trellis/proto/ip";
import { canonicalPrefixes } from "./routes";
import { consumePreAuthKey, type KeyGrant } from "./preauth";
import { audit, nodeRef } from "./audit";
import type { ControlEvent } from "./events";
import { recordChange } from "./outbox";
import { claimName, nameOwner, namesHeldForOthers } from "./names";

type Tx = Parameters<Parameters<Database["prisma"]["$transaction"]>[0]>[0];

/** Node keys of untagged nodes expire after 180 days (Tailscale's default); tagged nodes' keys do not. */
export const NODE_KEY_TTL_MS = 180 * 24 * 3600 * 1000;
const ATTEMPTS = 8;

/** A DNS label from a reported hostname: lowercase letters, digits and inner hyphens, at most 63. */
export function dnsLabel(hostname: string): string {
  const label = hostname
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "") // accents left apart by NFKD
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/-+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 63)
    .replace(/-+$/, "");
  return label || "node";
}

/** A free name for a new machine of `owner`: taken by no machine, and not retired for another owner (names.ts). */
async function uniqueName(tx: Tx, base: string, owner: string): Promise<string> {
  if (
    !(await tx.node.findUnique({ where: { name: base }, select: { id: true } })) &&
    !(await namesHeldForOthers(tx, [base], owner)).has(base)
  ) {
    return base;
  }
  // Taken: read only names that can be "<base>-<n>", not every name sharing
  // the prefix (for "node-1", not node-10 … node-19999). A long base is cut
  // to make room for the suffix, never below 49 characters (labels have no
  // runs of dashes, so cutting trims at most one).
  const stem = base.length <= 51 ? `${base}-` : base.slice(0, 48);
  const taken = new Set([
    ...(await tx.node.findMany({ where: { name: { startsWith: stem } }, select: { name: true } })).map(
      (n) => n.name,
    ),
    ...(await namesHeldForOthers(tx, { startsWith: stem }, owner)),
  ]);
  for (let i = 2; ; i++) {
    const suffix = `-${i}`;
    const name = base.slice(0, 63 - suffix.length).replace(/-+$/, "") + suffix;
    if (!taken.has(name)) return name;
  }
}

/** Canonical advertised routes; tailnet addresses themselves cannot be routed through a node. */
function canonicalRoutes(routes: string[]): string[] {
  return canonicalPrefixes(routes, "routableIPs", (p) =>
    p.bits > 0 && (prefixesOverlap(p, TAILNET_V4) || prefixesOverlap(p, TAILNET_V6))
      ? "overlaps the tailnet's own addresses"
      : null,
  );
}

export interface Registered {
  response: RegisterResponse;
  node: Models.Node;
  /** The node key this registration rotated away from, if it was a rotation. */
  rotatedFrom?: string;
  /** The change to publish (numbered in the outbox on PostgreSQL, committed with the node). */
  change: Extract<ControlEvent, { type: "nodes" }>;
}

export interface RegisterOptions {
  dnsDomain: string;
  now?: Date;
  /** Lifetime of new untagged node keys, in days (tailnet settings); 180 by default. */
  keyExpiryDays?: number;
  /** Tailnet settings: new nodes wait for an admin (authorized = false). */
  nodeApproval?: boolean;
  /**
   * Check `rotateFrom.signature` (NodeAuthenticator.verifyRotation); throws
   * when it does not prove possession of the old key. Without it rotation
   * requests are refused.
   */
  verifyRotation?: (oldKey: string, signature: string, newKey: string) => void;
  /**
   * A logged-in person registering this key for themselves (a browser tab):
   * without a pre-auth key, the node is theirs and untagged, and ephemeral
   * unless the tailnet keeps browser machines (`persistentBrowserNodes`).
   * The caller has checked the session and its right to add machines.
   */
  sessionUser?: { userId: string };
  /** Tailnet settings: session-registered (browser) nodes are not ephemeral. */
  persistentBrowserNodes?: boolean;
}

/** A node whose row remembers `nodeKey` as a rotated-away key, if any. */
function retiredBy(tx: Tx, nodeKey: string) {
  // previousKeys is JSON text; node keys hold only [a-z0-9:], so the quoted key is an exact element match.
  return tx.node.findFirst({ where: { previousKeys: { contains: `"${nodeKey}"` } }, select: { id: true } });
}

function retiredError(): ControlError {
  return new ControlError(
    "node_key_retired",
    409,
    "this node key was rotated away from and can never register again; generate a new key",
  );
}

/** The key of a plain WireGuard peer (admin/wireguard.ts) never talks to the control server. */
export function wireguardOnlyError(): ControlError {
  return new ControlError(
    "wireguard_peer",
    403,
    "this key belongs to a plain WireGuard peer, which reaches the tailnet through its gateway; it cannot join as a Trellis node",
  );
}

function preAuthRequired(): ControlError {
  return new ControlError(
    "invalid_preauth_key",
    401,
    "a pre-auth key is needed to register a new or expired node key",
  );
}

export async function registerNode(
  db: Database,
  nodeKey: string,
  body: unknown,
  opts: RegisterOptions,
): Promise<Registered> {
  const req = parseOr400(RegisterRequest, body, "invalid registration");
  const routes = canonicalRoutes(req.routableIPs);
  const now = opts.now ?? new Date();
  const ttlMs = opts.keyExpiryDays !== undefined ? opts.keyExpiryDays * 24 * 3600 * 1000 : NODE_KEY_TTL_MS;
  const attrs = { hostname: req.hostname, os: req.os, advertisedRoutes: JSON.stringify(routes) };
  const rotateFrom = req.rotateFrom;
  if (rotateFrom) {
    if (rotateFrom.nodeKey === nodeKey) {
      throw new ControlError("invalid_request", 400, "rotateFrom.nodeKey: must differ from the signing key", [
        { path: "rotateFrom.nodeKey", message: "must differ from the signing key" },
      ]);
    }
    if (!opts.verifyRotation) throw new ControlError("unsupported", 400, "key rotation is not available");
    // Outside the transaction: pure crypto, and it consumes the proof (replay).
    opts.verifyRotation(rotateFrom.nodeKey, rotateFrom.signature, nodeKey);
  }

  for (let attempt = 1; ; attempt++) {
    try {
      return await db.prisma.$transaction(
        async (tx) => {
          const done = await registerIn(tx);
          // Last, so the outbox's lock is held only for the commit (outbox.ts).
          return { ...done, change: await recordChange(db, tx, { type: "nodes", ids: [done.node.id] }) };
        },
        // Registrations queue behind each other on the counter row; allow for a storm.
        { maxWait: 15_000, timeout: 15_000 },
      );
    } catch (err) {
      if (isUniqueViolation(err) && attempt < ATTEMPTS) continue;
      throw err;
    }
  }

  async function registerIn(tx: Tx): Promise<Omit<Registered, "change">> {
    const existing = await tx.node.findUnique({ where: { nodeKey } });
    if (existing?.wireguardOnly) throw wireguardOnlyError();
    // A session registers a key for its own user only: a key that is another
    // user's machine (or a tagged one) is not handed over to whoever is
    // logged in now (a shared browser, a copied key), live or expired.
    if (
      existing &&
      opts.sessionUser &&
      req.preAuthKey === undefined &&
      existing.userId !== opts.sessionUser.userId
    ) {
      throw new ControlError(
        "node_key_owned",
        403,
        "this node key belongs to another user's machine; it cannot join as yours (sign out, or use a new key)",
      );
    }
    if (existing && (existing.expiresAt === null || existing.expiresAt > now)) {
      // A restart, or the retry of a rotation that already went through.
      if (rotateFrom && !jsonList(existing.previousKeys).includes(rotateFrom.nodeKey)) {
        throw new ControlError(
          "node_key_in_use",
          409,
          "the new node key already belongs to a node; rotate to a fresh key",
        );
      }
      const node = await tx.node.update({ where: { id: existing.id }, data: attrs });
      return { node, response: { node: identityOf(node, opts.dnsDomain), created: false } };
    }
    if (!existing && (await retiredBy(tx, nodeKey))) throw retiredError();
    if (rotateFrom) {
      if (existing) {
        throw new ControlError(
          "node_key_in_use",
          409,
          "the new node key already belongs to a node; rotate to a fresh key",
        );
      }
      return await rotate(tx, nodeKey, rotateFrom.nodeKey, attrs, now, opts.dnsDomain);
    }
    let grant: KeyGrant | { id: null; tags: string[]; userId: string; ephemeral: boolean };
    if (req.preAuthKey !== undefined) grant = await consumePreAuthKey(tx, req.preAuthKey, now);
    else if (opts.sessionUser) {
      grant = {
        id: null,
        tags: [],
        userId: opts.sessionUser.userId,
        ephemeral: !opts.persistentBrowserNodes,
      };
    } else throw preAuthRequired();
    const owner = {
      tags: JSON.stringify(grant.tags),
      userId: grant.tags.length > 0 ? null : grant.userId,
      ephemeral: grant.ephemeral,
      preAuthKeyId: grant.id,
      // A renewed node keeps its approval (or its wait for one).
      authorized: existing ? existing.authorized : !opts.nodeApproval,
      expiresAt: grant.tags.length > 0 ? null : new Date(now.getTime() + ttlMs),
    };
    let node: Models.Node;
    if (existing) {
      node = await tx.node.update({ where: { id: existing.id }, data: { ...attrs, ...owner } });
    } else {
      const addrs = await allocateAddresses(tx);
      const name = await uniqueName(tx, dnsLabel(req.hostname), nameOwner(owner));
      await claimName(tx, name);
      node = await tx.node.create({ data: { nodeKey, name, ...addrs, ...attrs, ...owner } });
    }
    await audit(tx, {
      actor: grant.id === null ? `user:${grant.userId}` : `node:${node.id}`,
      action: existing ? "node.reauthenticate" : "node.register",
      target: `node:${node.id}`,
      detail: {
        after: {
          name: node.name,
          ipv4: node.ipv4,
          ipv6: node.ipv6,
          tags: grant.tags,
          authorized: node.authorized,
        },
        ...(grant.id === null ? { via: "session" } : { preAuthKey: grant.id }),
      },
    });
    return { node, response: { node: identityOf(node, opts.dnsDomain), created: !existing } };
  }
}

/**
 * Key rotation: the node registered under `oldKey` continues under `newKey`
 * (same id, name, addresses, owner, tags, expiry); the old key joins
 * previousKeys and never authenticates or registers again. The update is
 * conditional on the old key, so two racing rotations cannot both win.
 */
async function rotate(
  tx: Tx,
  newKey: string,
  oldKey: string,
  attrs: { hostname: string; os: string; advertisedRoutes: string },
  now: Date,
  dnsDomain: string,
): Promise<Omit<Registered, "change">> {
  const old = await tx.node.findUnique({ where: { nodeKey: oldKey } });
  if (!old) {
    if (await retiredBy(tx, oldKey)) {
      throw new ControlError("node_key_retired", 409, "rotateFrom.nodeKey was already rotated away from");
    }
    throw new ControlError("unknown_node", 401, "rotateFrom.nodeKey is not a registered node key");
  }
  if (old.wireguardOnly) throw wireguardOnlyError();
  if (old.expiresAt !== null && old.expiresAt <= now) {
    throw new ControlError(
      "node_key_expired",
      401,
      "rotateFrom.nodeKey has expired; renew it with a pre-auth key before rotating",
    );
  }
  const previousKeys = [oldKey, ...jsonList(old.previousKeys).filter((k) => k !== newKey)].slice(
    0,
    MAX_PREVIOUS_KEYS,
  );
  const { count } = await tx.node.updateMany({
    where: { id: old.id, nodeKey: oldKey },
    data: { ...attrs, nodeKey: newKey, previousKeys: JSON.stringify(previousKeys) },
  });
  if (count !== 1) {
    throw new ControlError("conflict", 409, "the node changed during the key rotation; retry");
  }
  const node = await tx.node.findUniqueOrThrow({ where: { id: old.id } });
  await audit(tx, {
    actor: nodeRef(node.id),
    action: "node.rotate_key",
    target: `node:${node.id}`,
    detail: { before: { nodeKey: oldKey }, after: { nodeKey: newKey } },
  });
  return { node, rotatedFrom: oldKey, response: { node: identityOf(node, dnsDomain), created: false } };
}
