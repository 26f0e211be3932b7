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
//   identity and addresses and taking tags and owner from the new key.
import type { Database, Models } from "@trellis/db";
import { RegisterRequest, type RegisterResponse } from "@trellis/proto";
import { allocateAddresses } from "./addresses";
import { ControlError } from "./errors";
import { isUniqueViolation, parseOr400 } from "./errors-util";
import { identityOf } from "./node-view";
import { formatPrefix, parsePrefix, prefixesOverlap, TAILNET_V4, TAILNET_V6 } from "./policy/ip";
import { consumePreAuthKey } from "./preauth";

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

async function uniqueName(tx: Tx, base: string): Promise<string> {
  const taken = new Set(
    (await tx.node.findMany({ where: { name: { startsWith: base } }, select: { name: true } })).map(
      (n) => n.name,
    ),
  );
  if (!taken.has(base)) return base;
  for (let i = 2; ; i++) {
    const suffix = `-${i}`;
    const name = base.slice(0, 63 - suffix.length).replace(/-+$/, "") + suffix;
    if (!taken.has(name)) return name;
  }
}

/** Canonical advertised routes; tailnet addresses themselves cannot be routed through a node. */
function canonicalRoutes(routes: string[]): string[] {
  const out = new Set<string>();
  routes.forEach((r, i) => {
    const p = parsePrefix(r);
    if (!p) {
      throw new ControlError("invalid_request", 400, `routableIPs.${i}: "${r}" is not a CIDR prefix`, [
        { path: `routableIPs.${i}`, message: "not a CIDR prefix" },
      ]);
    }
    if (p.bits > 0 && (prefixesOverlap(p, TAILNET_V4) || prefixesOverlap(p, TAILNET_V6))) {
      throw new ControlError(
        "invalid_request",
        400,
        `routableIPs.${i}: ${r} overlaps the tailnet's own range`,
        [{ path: `routableIPs.${i}`, message: "overlaps the tailnet's own addresses" }],
      );
    }
    out.add(formatPrefix(p));
  });
  return [...out].sort();
}

export interface Registered {
  response: RegisterResponse;
  node: Models.Node;
}

export async function registerNode(
  db: Database,
  nodeKey: string,
  body: unknown,
  opts: { dnsDomain: string; now?: Date },
): Promise<Registered> {
  const req = parseOr400(RegisterRequest, body, "invalid registration");
  const routes = canonicalRoutes(req.routableIPs);
  const now = opts.now ?? new Date();
  const attrs = { hostname: req.hostname, os: req.os, advertisedRoutes: JSON.stringify(routes) };

  for (let attempt = 1; ; attempt++) {
    try {
      return await db.prisma.$transaction(
        async (tx) => {
          const existing = await tx.node.findUnique({ where: { nodeKey } });
          if (existing && (existing.expiresAt === null || existing.expiresAt > now)) {
            const node = await tx.node.update({ where: { id: existing.id }, data: attrs });
            return { node, response: { node: identityOf(node, opts.dnsDomain), created: false } };
          }
          const grant = await consumePreAuthKey(tx, req.preAuthKey, now);
          const owner = {
            tags: JSON.stringify(grant.tags),
            userId: grant.tags.length > 0 ? null : grant.userId,
            ephemeral: grant.ephemeral,
            preAuthKeyId: grant.id,
            authorized: true,
            expiresAt: grant.tags.length > 0 ? null : new Date(now.getTime() + NODE_KEY_TTL_MS),
          };
          let node: Models.Node;
          if (existing) {
            node = await tx.node.update({ where: { id: existing.id }, data: { ...attrs, ...owner } });
          } else {
            const addrs = await allocateAddresses(tx);
            const name = await uniqueName(tx, dnsLabel(req.hostname));
            node = await tx.node.create({ data: { nodeKey, name, ...addrs, ...attrs, ...owner } });
          }
          await tx.auditEvent.create({
            data: {
              actor: `node:${node.id}`,
              action: existing ? "node.reauthenticate" : "node.register",
              target: `node:${node.id}`,
              detail: JSON.stringify({
                after: { name: node.name, ipv4: node.ipv4, ipv6: node.ipv6, tags: grant.tags },
                preAuthKey: grant.id,
              }),
            },
          });
          return { node, response: { node: identityOf(node, opts.dnsDomain), created: !existing } };
        },
        // Registrations queue behind each other on the counter row; allow for a storm.
        { maxWait: 15_000, timeout: 15_000 },
      );
    } catch (err) {
      if (isUniqueViolation(err) && attempt < ATTEMPTS) continue;
      throw err;
    }
  }
}
