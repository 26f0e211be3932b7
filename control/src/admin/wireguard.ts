// Plain WireGuard peers in the admin API: a machine made from a WireGuard
// public key (wg-quick, wireguard-go, a phone's WireGuard app) that reaches
// the tailnet through a gateway, and its wg-quick file.
//
// It is a node like any other — an address from the same counter, a name, an
// owner (a user or tags), in Machines and in the policy's topology — with
// `wireguardOnly` set and the gateway it goes through. It never talks to the
// control server (node-auth refuses its key, the relay does not admit it);
// only its gateway lists it as a peer (netmap.ts), and answers its handshakes
// on the gateway's UDP port wherever they come from, as WireGuard does.
import {
  CreateWireGuardPeerRequest,
  decodeKey,
  encodeKey,
  WireGuardConfigQuery,
  wgKeyBytes,
  wgKeyText,
  wgQuickConfig,
  type MachineInfo,
  type WireGuardPeerConfig,
} from "@trellis/proto";
import {
  formatPrefix,
  internetPrefixes,
  lastAddr,
  parseAddr,
  parsePrefix,
  prefixesOverlap,
  TAILNET_V4,
  TAILNET_V6,
  type Prefix,
} from "@trellis/proto/ip";
import { addrSet, FilterCompiler, type NodeInfo, type Policy, type Topology } from "@trellis/policy";
import type { Models } from "@trellis/db";
import { allocateAddresses } from "../addresses";
import { actorRef, audit, nodeRef } from "../audit";
import { requireScope, seesAllMachines, type Actor } from "../auth/actor";
import { ControlError } from "../errors";
import { isUniqueViolation, jsonList, parseOr400 } from "../errors-util";
import { isActive } from "../netmap";
import { claimName, nameOwner, namesHeldForOthers } from "../names";
import { recordChange } from "../outbox";
import type { AdminContext } from "./context";
import { checkTags, machineInfo } from "./machines";

/** What the file asks of the peer: a keepalive every 25 s keeps NAT mappings (and the gateway's knowledge of where it is) alive. */
export const WG_KEEPALIVE_S = 25;
const ATTEMPTS = 8;

function fieldError(status: number, code: string, path: string, message: string): ControlError {
  return new ControlError(code, status, `${path}: ${message}`, [{ path, message }]);
}

/** Why `gw` cannot carry plain WireGuard peers, or null when it can. */
export function gatewayProblem(gw: Models.Node | null, now = new Date()): string | null {
  if (!gw) return "no such machine";
  if (gw.wireguardOnly) return `${gw.name} is a plain WireGuard peer itself`;
  if (!isActive(gw, now)) return `${gw.name} is not active (awaiting approval, or its key expired)`;
  if (jsonList(gw.endpoints).length === 0) {
    return `${gw.name} has published no UDP endpoint (only gateways started with \`trellis up\` have one)`;
  }
  return null;
}

/**
 * Create a plain WireGuard peer from its public key (admins only). The key
 * pair is made elsewhere — in the admin's browser, or on the peer — and the
 * private key never comes here.
 */
export async function createWireGuardPeer(
  ctx: AdminContext,
  actor: Actor,
  body: unknown,
): Promise<MachineInfo> {
  requireScope(actor, "machines:write");
  if (actor.role !== "admin") throw new ControlError("forbidden", 403, "only admins may add WireGuard peers");
  const req = parseOr400(CreateWireGuardPeerRequest, body, "invalid WireGuard peer");
  const tags = [...new Set(req.tags ?? [])].sort();
  if (tags.length > 0 && req.userId !== undefined) {
    throw fieldError(
      400,
      "invalid_request",
      "userId",
      "a tagged machine has no owner: give tags or a user, not both",
    );
  }
  if (tags.length > 0) await checkTags(ctx, actor, tags);
  const nodeKey = encodeKey("nodekey", wgKeyBytes(req.publicKey));
  const userId = tags.length > 0 ? null : (req.userId ?? actor.userId);
  const now = new Date();

  for (let attempt = 1; ; attempt++) {
    try {
      const { id, change } = await ctx.db.prisma.$transaction(
        async (tx) => {
          const gw = await tx.node.findUnique({ where: { id: req.gatewayId } });
          const problem = gatewayProblem(gw, now);
          if (problem) throw fieldError(400, "invalid_request", "gatewayId", problem);
          if (
            userId !== null &&
            !(await tx.user.findUnique({ where: { id: userId }, select: { id: true } }))
          ) {
            throw fieldError(400, "invalid_request", "userId", "no such user");
          }
          if (
            (await tx.node.findUnique({ where: { nodeKey }, select: { id: true } })) ||
            (await tx.node.findFirst({
              where: { previousKeys: { contains: `"${nodeKey}"` } },
              select: { id: true },
            }))
          ) {
            throw fieldError(409, "conflict", "publicKey", "this key already belongs to a machine (or did)");
          }
          if (await tx.node.findUnique({ where: { name: req.name }, select: { id: true } })) {
            throw fieldError(409, "conflict", "name", `a machine named ${req.name} already exists`);
          }
          const owner = nameOwner({ userId, tags });
          if ((await namesHeldForOthers(tx, [req.name], owner)).has(req.name)) {
            throw fieldError(
              409,
              "conflict",
              "name",
              `${req.name} belonged to a machine removed lately; it is kept for that machine's owner for 30 days`,
            );
          }
          await claimName(tx, req.name);
          const addrs = await allocateAddresses(tx);
          const node = await tx.node.create({
            data: {
              nodeKey,
              name: req.name,
              hostname: req.name,
              os: "WireGuard",
              ...addrs,
              tags: JSON.stringify(tags),
              userId,
              wireguardOnly: true,
              gatewayId: gw!.id,
              authorized: true,
              // Nothing would renew it: a plain peer never logs in. An admin expires or removes it.
              expiresAt: null,
            },
          });
          await audit(tx, {
            actor: actorRef(actor),
            action: "node.register",
            target: nodeRef(node.id),
            detail: {
              after: { name: node.name, ipv4: node.ipv4, ipv6: node.ipv6, tags, userId, gatewayId: gw!.id },
              via: "wireguard",
            },
          });
          return { id: node.id, change: await recordChange(ctx.db, tx, { type: "nodes", ids: [node.id] }) };
        },
        { maxWait: 15_000, timeout: 15_000 },
      );
      ctx.events.publish(change);
      const node = await ctx.db.prisma.node.findUniqueOrThrow({ where: { id }, include: { user: true } });
      return machineInfo(node, await ctx.dnsDomain(), now);
    } catch (err) {
      // The address counter's row being created by a racing registration, or a racing name.
      if (isUniqueViolation(err) && attempt < ATTEMPTS) continue;
      if (isUniqueViolation(err))
        throw fieldError(409, "conflict", "name", "the name or key was taken meanwhile");
      throw err;
    }
  }
}

/** Whether a filter destination ("*", an address, a prefix or an "a-b" range) overlaps `p`. */
function destinationOverlaps(ip: string, p: Prefix): boolean {
  if (ip === "*") return true;
  const dash = ip.indexOf("-");
  if (dash >= 0) {
    const a = parseAddr(ip.slice(0, dash));
    const b = parseAddr(ip.slice(dash + 1));
    return a !== null && b !== null && a.v === p.v && a.n <= lastAddr(p) && b.n >= p.base;
  }
  const q = parsePrefix(ip);
  return q !== null && prefixesOverlap(q, p);
}

/**
 * What the policy lets `peer` reach through its gateway, by the rules of the
 * gateway's own packet filter (the one it enforces on the peer's packets)
 * that admit the peer's addresses: the gateway's approved subnet routes some
 * rule opens, and its exit routes (`0.0.0.0/0`, `::/0`) when it is an
 * approved exit node and some rule opens `autogroup:internet` of that family.
 */
export function reachableRoutes(
  policy: Policy,
  topology: Topology,
  peer: NodeInfo,
  gw: NodeInfo,
): { routes: string[]; exitRoutes: string[] } {
  if (gw.routes.length === 0 && !gw.exit4 && !gw.exit6) return { routes: [], exitRoutes: [] };
  const rules = new FilterCompiler(policy, topology)
    .filterFor(gw)
    .filter((r) => r.DstPorts?.length && r.SrcIPs.some((s) => peer.addrs.some(addrSet(s))));
  const opens = (p: Prefix) => rules.some((r) => r.DstPorts!.some((d) => destinationOverlaps(d.IP, p)));
  const internet = internetPrefixes();
  return {
    routes: gw.routes.filter(opens).map(formatPrefix),
    exitRoutes: [
      ...(gw.exit4 && internet.v4.some(opens) ? ["0.0.0.0/0"] : []),
      ...(gw.exit6 && internet.v6.some(opens) ? ["::/0"] : []),
    ],
  };
}

/** The wg-quick file of a plain WireGuard peer, without its private key (the browser that made it fills that in). */
export async function wireGuardPeerConfig(
  ctx: AdminContext,
  actor: Actor,
  id: string,
  query: unknown,
): Promise<WireGuardPeerConfig> {
  requireScope(actor, "machines:read");
  const q = parseOr400(WireGuardConfigQuery, query, "invalid query");
  const node = await ctx.db.prisma.node.findUnique({ where: { id } });
  if (!node || !(seesAllMachines(actor) || (node.userId !== null && node.userId === actor.userId))) {
    throw new ControlError("not_found", 404, `no machine with id ${id}`);
  }
  if (!node.wireguardOnly) {
    throw new ControlError("not_found", 404, `${node.name} is not a plain WireGuard peer`);
  }
  const gw = node.gatewayId ? await ctx.db.prisma.node.findUnique({ where: { id: node.gatewayId } }) : null;
  if (!gw) {
    throw new ControlError(
      "conflict",
      409,
      `the gateway of ${node.name} was removed; remove it and add it again through another`,
    );
  }
  const endpoints = jsonList(gw.endpoints);
  const endpoint = q.endpoint ?? endpoints[0] ?? null;
  const [topology, active] = await Promise.all([ctx.topology(), ctx.policies.current()]);
  const peerInfo = topology.nodes.find((n) => n.name === node.id);
  const gwInfo = topology.nodes.find((n) => n.name === gw.id);
  const { routes, exitRoutes } =
    peerInfo && gwInfo
      ? reachableRoutes(active.policy, topology, peerInfo, gwInfo)
      : { routes: [], exitRoutes: [] };
  if (q.exitNode === "true" && exitRoutes.length === 0) {
    throw fieldError(
      409,
      "conflict",
      "exitNode",
      `${gw.name} is not an exit node ${node.name} may use: it must offer itself as one, be approved, and the policy must let ${node.name} reach autogroup:internet`,
    );
  }
  const addresses = [node.ipv4 && `${node.ipv4}/32`, node.ipv6 && `${node.ipv6}/128`].filter(
    (a): a is string => !!a,
  );
  const publicKey = wgKeyText(decodeKey("nodekey", node.nodeKey));
  const gatewayPublicKey = wgKeyText(decodeKey("nodekey", gw.nodeKey));
  const allowedIPs = [
    ...(q.exitNode === "true" ? exitRoutes : []),
    formatPrefix(TAILNET_V4),
    formatPrefix(TAILNET_V6),
    ...routes,
  ];
  return {
    machineId: node.id,
    name: node.name,
    publicKey,
    addresses,
    gateway: { id: gw.id, name: gw.name, publicKey: gatewayPublicKey, endpoint, endpoints },
    allowedIPs,
    exitRoutes,
    persistentKeepalive: WG_KEEPALIVE_S,
    config: wgQuickConfig({
      name: node.name,
      addresses,
      gatewayName: gw.name,
      gatewayPublicKey,
      endpoint,
      allowedIPs,
      persistentKeepalive: WG_KEEPALIVE_S,
      publicKey,
    }),
  };
}
