// Machines in the admin API: listing, renaming, tags, key expiry, routes,
// approval, removal. Admins and auditors see every machine; members see and
// change only their own, and any other id is a 404 for them, so they cannot
// probe which machines exist.
import type { Models } from "@trellis/db";
import {
  MachineQuery,
  PLAIN_PEER_ONLINE_MS,
  plainPeerOnline,
  SetRoutesRequest,
  UpdateMachineRequest,
  type MachineInfo,
  type Page,
} from "@trellis/proto";
import { formatPrefix, parseAddr, parsePrefix } from "@trellis/proto/ip";
import { z } from "zod";
import { audit, actorRef, nodeRef, type AuditAction } from "../audit";
import { requireScope, seesAllMachines, type Actor } from "../auth/actor";
import { ControlError } from "../errors";
import { isUniqueViolation, jsonList, parseOr400 } from "../errors-util";
import { parseHuJSON, parsePolicyDocument, parseSelector, type Policy } from "@trellis/policy";
import { canonicalPrefixes } from "../routes";
import { recordChange } from "../outbox";
import { readTailnet } from "../settings";
import type { AdminContext } from "./context";
import { containsFilter, decodeCursor, pageOf } from "./paging";
import { claimName, nameOwner, namesHeldForOthers, retireNames } from "../names";

type NodeWithUser = Models.Node & { user: Models.User | null };
type Tx = Parameters<Parameters<AdminContext["db"]["prisma"]["$transaction"]>[0]>[0];

const EXIT_ROUTES = ["0.0.0.0/0", "::/0"];

/** How long a node key lives from now when expiry is (re-)enabled: the tailnet's default key expiry. */
async function keyTtlMs(tx: Tx): Promise<number> {
  return (await readTailnet(tx)).keyExpiryDays * 24 * 3600 * 1000;
}

/** How a node row looks in the admin API. */
export function machineInfo(n: NodeWithUser, domain: string, now = new Date()): MachineInfo {
  const advertised = jsonList(n.advertisedRoutes);
  const approved = jsonList(n.approvedRoutes);
  return {
    id: n.id,
    name: n.name,
    dnsName: `${n.name}.${domain}`,
    hostname: n.hostname,
    os: n.os,
    nodeKey: n.nodeKey,
    ipv4: n.ipv4,
    ipv6: n.ipv6,
    user: n.user ? { id: n.user.id, email: n.user.email, name: n.user.name } : null,
    tags: jsonList(n.tags),
    // A plain WireGuard peer streams no map: its gateway reports its handshakes (lastSeen).
    online: n.wireguardOnly ? plainPeerOnline(n.lastSeen, now.getTime()) : n.online,
    lastSeen: n.lastSeen?.toISOString() ?? null,
    keyExpiry: n.expiresAt?.toISOString() ?? null,
    expired: n.expiresAt !== null && n.expiresAt <= now,
    ephemeral: n.ephemeral,
    authorized: n.authorized,
    advertisedRoutes: advertised,
    approvedRoutes: approved,
    exitNodeAdvertised: EXIT_ROUTES.every((r) => advertised.includes(r)),
    exitNodeApproved: EXIT_ROUTES.every((r) => approved.includes(r) && advertised.includes(r)),
    endpoints: jsonList(n.endpoints),
    homeRegion: n.homeRegion,
    createdAt: n.createdAt.toISOString(),
    ...(n.wireguardOnly ? { wireguard: { gatewayId: n.gatewayId } } : {}),
  };
}

function notFound(id: string): ControlError {
  return new ControlError("not_found", 404, `no machine with id ${id}`);
}

function visible(actor: Actor, node: { userId: string | null }): boolean {
  return seesAllMachines(actor) || (node.userId !== null && node.userId === actor.userId);
}

/** The node, if the actor may see it; 404 otherwise (also for other users' machines, to members). */
async function findVisible(db: Tx | AdminContext["db"]["prisma"], actor: Actor, id: string) {
  const node = await db.node.findUnique({ where: { id } });
  if (!node || !visible(actor, node)) throw notFound(id);
  return node;
}

function requireAdmin(actor: Actor, what: string): void {
  if (actor.role !== "admin") throw new ControlError("forbidden", 403, `only admins may ${what}`);
}

async function infoOf(ctx: AdminContext, id: string): Promise<MachineInfo> {
  const node = await ctx.db.prisma.node.findUnique({ where: { id }, include: { user: true } });
  if (!node) throw notFound(id);
  return machineInfo(node, await ctx.dnsDomain());
}

/** Audit a change to node `nodeId` by `actor`, in the change's transaction. */
function auditNode(
  tx: Tx,
  actor: Actor,
  action: AuditAction,
  nodeId: string,
  detail: { before: unknown; after: unknown },
) {
  return audit(tx, { actor: actorRef(actor), action, target: nodeRef(nodeId), detail });
}

// --- Reading ------------------------------------------------------------------

export async function listMachines(
  ctx: AdminContext,
  actor: Actor,
  query: unknown,
): Promise<Page<MachineInfo>> {
  requireScope(actor, "machines:read");
  const q = parseOr400(MachineQuery, query, "invalid machine query");
  const after = decodeCursor(q.cursor, z.tuple([z.string().max(63)]));
  const now = new Date();
  const and: Models.Prisma.NodeWhereInput[] = [];
  if (!seesAllMachines(actor)) and.push({ userId: actor.userId });
  if (q.userId !== undefined) and.push({ userId: q.userId });
  if (q.tag !== undefined) and.push({ tags: { contains: JSON.stringify(q.tag) } });
  // Plain WireGuard peers are online while their last handshake is recent (machineInfo).
  const seenSince = new Date(now.getTime() - PLAIN_PEER_ONLINE_MS);
  if (q.status === "online") {
    and.push({ OR: [{ online: true }, { wireguardOnly: true, lastSeen: { gte: seenSince } }] });
  }
  if (q.status === "offline") {
    and.push({ online: false });
    and.push({ OR: [{ wireguardOnly: false }, { lastSeen: null }, { lastSeen: { lt: seenSince } }] });
  }
  if (q.status === "pending") and.push({ authorized: false });
  if (q.status === "expired") and.push({ expiresAt: { lte: now } });
  const text = q.q?.trim();
  if (text) {
    const c = containsFilter(ctx, text);
    and.push({
      OR: [
        { name: c },
        { hostname: c },
        { ipv4: c },
        { ipv6: c },
        { tags: c },
        { user: { is: { email: c } } },
      ],
    });
  }
  const where: Models.Prisma.NodeWhereInput = { AND: and };
  const [rows, total, domain] = await Promise.all([
    ctx.db.prisma.node.findMany({
      where: after ? { AND: [...and, { name: { gt: after[0] } }] } : where,
      include: { user: true },
      orderBy: { name: "asc" },
      take: q.limit + 1,
    }),
    ctx.db.prisma.node.count({ where }),
    ctx.dnsDomain(),
  ]);
  return pageOf(
    rows,
    q.limit,
    total,
    (n) => [n.name],
    (n) => machineInfo(n, domain, now),
  );
}

export async function getMachine(ctx: AdminContext, actor: Actor, id: string): Promise<MachineInfo> {
  requireScope(actor, "machines:read");
  await findVisible(ctx.db.prisma, actor, id);
  return infoOf(ctx, id);
}

// --- Tags -----------------------------------------------------------------------

/**
 * Whether `actor` owns `tag` per the policy's tagOwners: their email, a
 * group listing them (in the policy, or from their identity provider's
 * groups claim), autogroup:member (every user) or autogroup:admin.
 */
function ownsTag(
  owners: readonly string[],
  policy: Policy,
  actor: Actor,
  idpGroups: readonly string[],
): boolean {
  const email = actor.email.toLowerCase();
  return owners.some((text) => {
    const r = parseSelector(text, policy.names, "tagOwner");
    if (!r.ok) return false;
    const sel = r.value;
    switch (sel.kind) {
      case "user":
        return sel.login === email;
      case "group":
        return (
          (policy.names.groups.get(sel.name) ?? []).some((m) => m.toLowerCase() === email) ||
          idpGroups.includes(sel.name.slice("group:".length))
        );
      case "autogroup":
        return sel.name === "member" || (sel.name === "admin" && actor.role === "admin");
      default:
        return false;
    }
  });
}

/** Whether `actor` owns a tag under the active policy's tagOwners. */
async function tagOwnership(
  ctx: AdminContext,
  actor: Actor,
  active: { policy: Policy; text: string },
): Promise<(tag: string) => boolean> {
  const doc = parsePolicyDocument(parseHuJSON(active.text));
  const user = await ctx.db.prisma.user.findUnique({ where: { id: actor.userId } });
  const idpGroups = user ? jsonList(user.groups) : [];
  const ownerLists = new Map(Object.entries(doc.tagOwners ?? {}));
  return (tag) => ownsTag(ownerLists.get(tag) ?? [], active.policy, actor, idpGroups);
}

/**
 * The tags `actor` may give machines and keys: those the policy's
 * tagOwners define, and of those the ones they own (admins: all), sorted.
 * The console offers these instead of free text.
 */
export async function tagChoices(ctx: AdminContext, actor: Actor): Promise<string[]> {
  const active = await ctx.policies.current();
  const defined = [...active.policy.names.tags].sort();
  if (actor.role === "admin") return defined;
  const owns = await tagOwnership(ctx, actor, active);
  return defined.filter(owns);
}

/** 400 for tags the policy does not define; 403 for tags a non-admin does not own. */
export async function checkTags(ctx: AdminContext, actor: Actor, tags: readonly string[]): Promise<void> {
  const active = await ctx.policies.current();
  const undefinedTags = tags
    .map((tag, i) => ({ tag, i }))
    .filter(({ tag }) => !active.policy.names.tags.has(tag));
  if (undefinedTags.length > 0) {
    throw new ControlError(
      "invalid_request",
      400,
      `tags: ${undefinedTags.map((t) => t.tag).join(", ")} ${undefinedTags.length === 1 ? "is" : "are"} not defined in the policy's tagOwners`,
      undefinedTags.map(({ tag, i }) => ({
        path: `tags.${i}`,
        message: `${tag} is not defined in the policy's tagOwners`,
      })),
    );
  }
  if (actor.role === "admin") return;
  const owns = await tagOwnership(ctx, actor, active);
  const notOwned = tags.filter((t) => !owns(t));
  if (notOwned.length > 0) {
    throw new ControlError(
      "forbidden",
      403,
      `you are not an owner of ${notOwned.join(", ")} (see tagOwners in the policy)`,
    );
  }
}

// --- Changing -------------------------------------------------------------------

/**
 * Rename, retag or change key expiry. Tagging a machine removes its owner
 * and disables its key expiry, as in Tailscale; removing every tag makes the
 * acting admin its owner and starts the default key lifetime. Changing key
 * expiry is for admins. Each kind of change is audited on its own, all in one
 * transaction.
 */
export async function updateMachine(
  ctx: AdminContext,
  actor: Actor,
  id: string,
  body: unknown,
): Promise<MachineInfo> {
  requireScope(actor, "machines:write");
  const req = parseOr400(UpdateMachineRequest, body, "invalid machine update");
  await findVisible(ctx.db.prisma, actor, id);
  if (req.keyExpiryDisabled !== undefined) requireAdmin(actor, "change key expiry");
  const tags = req.tags && [...new Set(req.tags)].sort();
  if (tags) await checkTags(ctx, actor, tags);

  const now = new Date();
  let change;
  try {
    change = await ctx.db.prisma.$transaction(async (tx) => {
      const node = await findVisible(tx, actor, id);
      const data: Models.Prisma.NodeUpdateInput = {};
      let any = false;
      if (req.name !== undefined && req.name !== node.name) {
        const taken = await tx.node.findUnique({ where: { name: req.name } });
        if (taken) throw new ControlError("conflict", 409, `a machine named ${req.name} already exists`);
        if ((await namesHeldForOthers(tx, [req.name], nameOwner(node))).has(req.name)) {
          throw new ControlError(
            "conflict",
            409,
            `${req.name} belonged to a machine removed lately; it is kept for that machine's owner for 30 days`,
          );
        }
        await claimName(tx, req.name);
        data.name = req.name;
        await auditNode(tx, actor, "node.rename", id, {
          before: { name: node.name },
          after: { name: req.name },
        });
        any = true;
      }
      let expiresAt = node.expiresAt;
      const beforeTags = jsonList(node.tags);
      if (tags && JSON.stringify(tags) !== JSON.stringify(beforeTags)) {
        let userId = node.userId;
        if (tags.length > 0) {
          userId = null;
          expiresAt = null;
        } else if (node.userId === null) {
          // An untagged machine needs an owner: whoever removed the last tag. A plain
          // WireGuard peer never logs in to renew a key, so its key keeps not expiring.
          userId = actor.userId;
          expiresAt = node.wireguardOnly ? null : new Date(now.getTime() + (await keyTtlMs(tx)));
        }
        data.tags = JSON.stringify(tags);
        data.user = userId === null ? { disconnect: true } : { connect: { id: userId } };
        data.expiresAt = expiresAt;
        await auditNode(tx, actor, "node.tags", id, {
          before: { tags: beforeTags, userId: node.userId, keyExpiry: node.expiresAt?.toISOString() ?? null },
          after: { tags, userId, keyExpiry: expiresAt?.toISOString() ?? null },
        });
        any = true;
      }
      if (req.keyExpiryDisabled !== undefined) {
        const next = req.keyExpiryDisabled ? null : new Date(now.getTime() + (await keyTtlMs(tx)));
        if (!(next === null && expiresAt === null)) {
          data.expiresAt = next;
          await auditNode(tx, actor, "node.key_expiry", id, {
            before: { keyExpiry: expiresAt?.toISOString() ?? null },
            after: { keyExpiry: next?.toISOString() ?? null },
          });
          any = true;
        }
      }
      if (!any) return null;
      await tx.node.update({ where: { id }, data });
      return recordChange(ctx.db, tx, { type: "nodes", ids: [id] });
    });
  } catch (err) {
    if (isUniqueViolation(err)) {
      throw new ControlError("conflict", 409, `a machine named ${req.name ?? "like that"} already exists`);
    }
    throw err;
  }
  if (change) ctx.events.publish(change);
  return infoOf(ctx, id);
}

/** The canonical text of a prefix, or null when it is not one. */
function canonicalOrNull(r: string): string | null {
  const p = parsePrefix(r);
  return p ? formatPrefix(p) : null;
}

/** Whether a prefix's address has bits set beyond its length ("10.20.0.5/24"). */
function hostBitsSet(r: string): boolean {
  const slash = r.indexOf("/");
  const addr = parseAddr(slash < 0 ? r : r.slice(0, slash));
  const p = parsePrefix(r);
  return addr !== null && p !== null && addr.n !== p.base;
}

/** Replace a machine's approved routes (admins only; other users' machines stay 404 to members). */
export async function setMachineRoutes(
  ctx: AdminContext,
  actor: Actor,
  id: string,
  body: unknown,
): Promise<MachineInfo> {
  requireScope(actor, "machines:write");
  const req = parseOr400(SetRoutesRequest, body, "invalid route approval");
  await findVisible(ctx.db.prisma, actor, id);
  requireAdmin(actor, "approve routes");
  // A prefix with host bits set is refused, not silently widened: 10.20.0.5/24 may be a typo for /32.
  req.routes.forEach((r, i) => {
    if (!hostBitsSet(r)) return;
    const message = `host bits are set; the network is ${canonicalOrNull(r)}`;
    throw new ControlError("invalid_request", 400, `routes.${i}: "${r}": ${message}`, [
      { path: `routes.${i}`, message },
    ]);
  });
  const approved = canonicalPrefixes(req.routes, "routes");
  const change = await ctx.db.prisma.$transaction(async (tx) => {
    const node = await findVisible(tx, actor, id);
    // As in Tailscale's console: only what the machine advertises can be approved.
    const advertised = new Set(jsonList(node.advertisedRoutes));
    const notAdvertised = approved.filter((r) => !advertised.has(r));
    if (notAdvertised.length > 0) {
      throw new ControlError(
        "invalid_request",
        400,
        `${node.name} does not advertise ${notAdvertised.join(", ")}`,
        notAdvertised.map((r) => ({
          path: `routes.${req.routes.findIndex((x) => canonicalOrNull(x) === r)}`,
          message: `${node.name} does not advertise ${r}`,
        })),
      );
    }
    const before = jsonList(node.approvedRoutes);
    if (JSON.stringify(before) === JSON.stringify(approved)) return null;
    await tx.node.update({ where: { id }, data: { approvedRoutes: JSON.stringify(approved) } });
    await auditNode(tx, actor, "node.routes", id, { before, after: approved });
    return recordChange(ctx.db, tx, { type: "nodes", ids: [id] });
  });
  if (change) ctx.events.publish(change);
  return infoOf(ctx, id);
}

/** Approve a machine that waits for approval (admins only). */
export async function authorizeMachine(ctx: AdminContext, actor: Actor, id: string): Promise<MachineInfo> {
  requireScope(actor, "machines:write");
  await findVisible(ctx.db.prisma, actor, id);
  requireAdmin(actor, "approve machines");
  const change = await ctx.db.prisma.$transaction(async (tx) => {
    const node = await findVisible(tx, actor, id);
    if (node.authorized) return null;
    await tx.node.update({ where: { id }, data: { authorized: true } });
    await auditNode(tx, actor, "node.authorize", id, {
      before: { authorized: false },
      after: { authorized: true },
    });
    return recordChange(ctx.db, tx, { type: "nodes", ids: [id] });
  });
  if (change) ctx.events.publish(change);
  return infoOf(ctx, id);
}

/** Expire a machine's key now: it must log in again (re-register) to rejoin. */
export async function expireMachineKey(ctx: AdminContext, actor: Actor, id: string): Promise<MachineInfo> {
  requireScope(actor, "machines:write");
  const now = new Date();
  const change = await ctx.db.prisma.$transaction(async (tx) => {
    const node = await findVisible(tx, actor, id);
    await tx.node.update({ where: { id }, data: { expiresAt: now } });
    await auditNode(tx, actor, "node.expire", id, {
      before: { keyExpiry: node.expiresAt?.toISOString() ?? null },
      after: { keyExpiry: now.toISOString() },
    });
    return recordChange(ctx.db, tx, { type: "nodes", ids: [id] });
  });
  ctx.events.publish(change);
  return infoOf(ctx, id);
}

/** Remove a machine. Its addresses are never handed out again (the IpAllocation high-water mark). */
export async function removeMachine(ctx: AdminContext, actor: Actor, id: string): Promise<void> {
  requireScope(actor, "machines:write");
  const change = await ctx.db.prisma.$transaction(async (tx) => {
    const node = await findVisible(tx, actor, id);
    await retireNames(tx, [node]);
    await tx.node.delete({ where: { id } });
    await auditNode(tx, actor, "node.remove", id, {
      before: {
        name: node.name,
        ipv4: node.ipv4,
        ipv6: node.ipv6,
        userId: node.userId,
        tags: jsonList(node.tags),
        nodeKey: node.nodeKey,
      },
      after: null,
    });
    return recordChange(ctx.db, tx, { type: "nodes", ids: [id] });
  });
  ctx.events.publish(change);
}
