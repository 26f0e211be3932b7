// The tailnet policy in the admin API: reading, dry-run validation, saving
// with optimistic concurrency, version history and restore, and the
// reachability checker ("can A reach B on port P, and by which rule?").
import {
  PageQuery,
  ReachabilityRequest,
  SetPolicyRequest,
  type Page,
  type PolicyValidation,
  type PolicyVersionInfo,
  type ReachabilityResult,
} from "@trellis/proto";
import { z } from "zod";
import { actorRef } from "../audit";
import { requireScope, type Actor } from "../auth/actor";
import { ControlError } from "../errors";
import { parseOr400 } from "../errors-util";
import {
  canReach,
  parseHuJSON,
  parsePolicyDocument,
  PolicyError,
  ReachQueryError,
  validatePolicy,
  type NodeInfo,
  type Policy,
  type ReachAnswer,
  type RuleRef,
  type Topology,
} from "@trellis/policy";
import { parseAddr } from "@trellis/proto/ip";
import {
  assertPolicySize,
  DEFAULT_POLICY_TEXT,
  MAX_POLICY_BYTES,
  type ActivePolicy,
  type SaveOptions,
} from "../policy-store";
import { autoApproveIn } from "../routes";
import { actorNames } from "./audit";
import type { AdminContext } from "./context";
import { decodeCursor, pageOf } from "./paging";

const PolicyText = z.string().max(MAX_POLICY_BYTES);

export async function getPolicy(ctx: AdminContext, actor: Actor): Promise<{ version: number; text: string }> {
  requireScope(actor, "policy:read");
  const active = await ctx.policies.current();
  return { version: active.version, text: active.text };
}

/**
 * Validate a policy without saving it, including its `tests` against the
 * current tailnet. `text` is the policy text, or a SetPolicyRequest body.
 */
export async function validatePolicyText(
  ctx: AdminContext,
  actor: Actor,
  text: unknown,
): Promise<PolicyValidation> {
  requireScope(actor, "policy:read");
  const source =
    typeof text === "string"
      ? parseOr400(PolicyText, text, "invalid policy")
      : parseOr400(SetPolicyRequest, text, "invalid policy").text;
  if (Buffer.byteLength(source) > MAX_POLICY_BYTES) {
    const message = `the policy exceeds ${MAX_POLICY_BYTES} bytes`;
    return { ok: false, message, issues: [{ path: "", message }] };
  }
  try {
    await checkPolicy(ctx, source, await ctx.topology(), "policy", false);
    return { ok: true };
  } catch (err) {
    if (PolicyError.is(err)) return { ok: false, message: err.message, issues: err.problems };
    throw err;
  }
}

/**
 * Validate a policy text against `topology` and run its tests, as a save
 * does: in the context's worker threads when it has them (a large policy
 * takes the CPU for a while, and this process also serves nodes and the
 * relay), here otherwise. Throws a PolicyError for an invalid policy.
 */
async function checkPolicy(
  ctx: AdminContext,
  text: string,
  topology: Topology,
  source: string,
  wantPolicy: true,
): Promise<Policy>;
async function checkPolicy(
  ctx: AdminContext,
  text: string,
  topology: Topology,
  source: string,
  wantPolicy: false,
): Promise<undefined>;
async function checkPolicy(
  ctx: AdminContext,
  text: string,
  topology: Topology,
  source: string,
  wantPolicy: boolean,
): Promise<Policy | undefined> {
  if (!ctx.policyCheck) {
    const policy = validatePolicy(text, { source, topology });
    return wantPolicy ? policy : undefined;
  }
  const policy = await ctx.policyCheck.check(text, topology, { source, wantPolicy });
  if (wantPolicy && !policy) throw new Error("internal: the policy check returned no policy");
  return policy;
}

/**
 * Save a policy version (validated against the tailnet as it is now) and
 * make it take effect: routes its autoApprovers cover are approved, then
 * every map stream gets the new filters. The one way a policy is saved.
 */
export async function applyPolicy(
  ctx: AdminContext,
  actor: Actor,
  text: string,
  opts: SaveOptions = {},
): Promise<ActivePolicy> {
  assertPolicySize(text);
  const topology = await ctx.topology();
  const validated = await checkPolicy(ctx, text, topology, opts.source ?? "policy", true);
  // Approvals are written with the version: streams never see the one without the other.
  const saved = await ctx.policies.save(text, actorRef(actor), topology, {
    ...opts,
    validated,
    alongside: (tx, policy) => autoApproveIn(tx, policy, { topology }),
  });
  // Nodes first: a policy event alone tells map builders that no node changed.
  for (const change of saved.changes) ctx.events.publish(change);
  const approved = saved.changes.length > 1 ? saved.changes[0] : null;
  ctx.log.info(
    {
      version: saved.version,
      actor: actorRef(actor),
      autoApproved: approved?.type === "nodes" ? approved.ids.length : 0,
    },
    opts.restoredFrom === undefined ? "policy saved" : "policy restored",
  );
  return saved;
}

/**
 * Validate and save a new policy version. With `baseVersion`, a version
 * saved since the editor loaded it fails the save with 409 `policy_conflict`.
 */
export async function savePolicyText(
  ctx: AdminContext,
  actor: Actor,
  body: unknown,
): Promise<{ version: number }> {
  requireScope(actor, "policy:write");
  const req = parseOr400(SetPolicyRequest, body, "invalid policy");
  const saved = await applyPolicy(ctx, actor, req.text, { expectedVersion: req.baseVersion });
  return { version: saved.version };
}

async function versionInfos(
  ctx: AdminContext,
  rows: { id: number; createdAt: Date; createdBy: string; text: string }[],
) {
  const [latest, names] = await Promise.all([
    ctx.db.prisma.policyVersion.findFirst({ orderBy: { id: "desc" }, select: { id: true } }),
    actorNames(
      ctx,
      rows.map((r) => r.createdBy),
    ),
  ]);
  return (r: { id: number; createdAt: Date; createdBy: string; text: string }): PolicyVersionInfo => ({
    id: r.id,
    createdAt: r.createdAt.toISOString(),
    createdBy: r.createdBy,
    createdByName: names.get(r.createdBy) ?? r.createdBy,
    bytes: Buffer.byteLength(r.text),
    current: r.id === (latest?.id ?? 0),
  });
}

/** Saved versions, newest first. */
export async function listPolicyVersions(
  ctx: AdminContext,
  actor: Actor,
  query: unknown,
): Promise<Page<PolicyVersionInfo>> {
  requireScope(actor, "policy:read");
  const q = parseOr400(PageQuery, query, "invalid query");
  const after = decodeCursor(q.cursor, z.tuple([z.number().int().min(0)]));
  const [rows, total] = await Promise.all([
    ctx.db.prisma.policyVersion.findMany({
      where: after ? { id: { lt: after[0] } } : {},
      orderBy: { id: "desc" },
      take: q.limit + 1,
    }),
    ctx.db.prisma.policyVersion.count(),
  ]);
  // The built-in default is the oldest version, 0: it was in force before the first save.
  const list: VersionRow[] = rows;
  if (rows.length <= q.limit && (!after || after[0] > 0)) list.push(await defaultVersion(ctx));
  const info = await versionInfos(ctx, list.slice(0, q.limit));
  return pageOf(list, q.limit, total + 1, (r) => [r.id], info);
}

type VersionRow = { id: number; createdAt: Date; createdBy: string; text: string };

/** Version 0: the policy a new tailnet starts with, dated when its first user was made. */
async function defaultVersion(ctx: AdminContext): Promise<VersionRow> {
  const first = await ctx.db.prisma.user.findFirst({
    orderBy: { createdAt: "asc" },
    select: { createdAt: true },
  });
  return { id: 0, createdAt: first?.createdAt ?? new Date(), createdBy: "system", text: DEFAULT_POLICY_TEXT };
}

async function findVersion(ctx: AdminContext, id: number): Promise<VersionRow> {
  if (id === 0) return defaultVersion(ctx);
  const row =
    Number.isSafeInteger(id) && id > 0
      ? await ctx.db.prisma.policyVersion.findUnique({ where: { id } })
      : null;
  if (!row) throw new ControlError("not_found", 404, `no policy version ${String(id)}`);
  return row;
}

export async function getPolicyVersion(
  ctx: AdminContext,
  actor: Actor,
  id: number,
): Promise<PolicyVersionInfo & { text: string }> {
  requireScope(actor, "policy:read");
  const row = await findVersion(ctx, id);
  const info = await versionInfos(ctx, [row]);
  return { ...info(row), text: row.text };
}

/** Save an old version's text as a new version, validated against the tailnet as it is now. */
export async function restorePolicyVersion(
  ctx: AdminContext,
  actor: Actor,
  id: number,
): Promise<{ version: number }> {
  requireScope(actor, "policy:write");
  const row = await findVersion(ctx, id);
  const saved = await applyPolicy(ctx, actor, row.text, { restoredFrom: id, source: `policy v${id}` });
  return { version: saved.version };
}

// --- Reachability -------------------------------------------------------------------

function badQuery(path: string, message: string): ControlError {
  return new ControlError("invalid_request", 400, `${path}: ${message}`, [{ path, message }]);
}

/** The machine a name refers to: a MagicDNS name, with or without the tailnet's suffix. */
export function byName(topology: Topology, text: string, domain: string): NodeInfo | undefined {
  let name = text.toLowerCase().replace(/\.$/, "");
  if (name.endsWith(`.${domain}`)) name = name.slice(0, -domain.length - 1);
  return topology.nodes.find((n) => n.hostname === name);
}

/** Why a name that is no active machine cannot be checked. */
async function unknownName(
  ctx: AdminContext,
  path: string,
  text: string,
  what: string,
): Promise<ControlError> {
  const row = await ctx.db.prisma.node.findUnique({ where: { name: text.toLowerCase() } });
  return row
    ? badQuery(
        path,
        `machine ${row.name} is not active (awaiting approval, key expired, or without an owner)`,
      )
    : badQuery(path, `"${text}" is not ${what}`);
}

function ruleText(text: string, ref: RuleRef): string | undefined {
  try {
    const doc = parsePolicyDocument(parseHuJSON(text)) as Record<string, unknown>;
    const entry = (doc[ref.section] as unknown[] | undefined)?.[ref.index];
    return entry === undefined ? undefined : JSON.stringify(entry);
  } catch {
    return undefined;
  }
}

/**
 * Whether `src` may reach `dst` on a port and protocol under the policy in
 * force, and by which rule. `src` is a machine name, a tailnet address, or
 * a user's email (allowed when any of their machines is); `dst` a machine
 * name or an address (a machine's, behind a subnet router, or on the
 * internet through an exit node).
 */
export async function checkReachability(
  ctx: AdminContext,
  actor: Actor,
  body: unknown,
): Promise<ReachabilityResult> {
  requireScope(actor, "policy:read");
  return explainReach(ctx, parseOr400(ReachabilityRequest, body, "invalid reachability query"));
}

/** The reachability answer for a valid query, with no scope check (callers decide who may ask what). */
export async function explainReach(
  ctx: AdminContext,
  req: z.output<typeof ReachabilityRequest>,
): Promise<ReachabilityResult> {
  const [topology, active, domain] = await Promise.all([
    ctx.topology(),
    ctx.policies.current(),
    ctx.dnsDomain(),
  ]);
  const label = (n: NodeInfo) => ({ id: n.name, name: n.hostname });

  const dstNode = byName(topology, req.dst, domain);
  if (!dstNode && !parseAddr(req.dst)) {
    throw await unknownName(ctx, "dst", req.dst, "a machine name or an IP address");
  }

  const srcNodes: NodeInfo[] = [];
  const srcByName = byName(topology, req.src, domain);
  if (srcByName) srcNodes.push(srcByName);
  else if (!parseAddr(req.src)) {
    if (!req.src.includes("@")) {
      throw await unknownName(ctx, "src", req.src, "a machine name, an IP address or a user's email");
    }
    const email = req.src.toLowerCase();
    srcNodes.push(...topology.nodes.filter((n) => !n.tagged && n.user?.email.toLowerCase() === email));
    if (srcNodes.length === 0) throw badQuery("src", `${req.src} has no active machines`);
  }

  const ask = (src: string): ReachAnswer => {
    try {
      return canReach(active.policy, topology, {
        src,
        dst: dstNode ? dstNode.name : req.dst,
        port: req.port,
        proto: req.proto ?? "tcp",
      });
    } catch (err) {
      if (err instanceof ReachQueryError) throw badQuery("", err.message);
      throw err;
    }
  };
  const tries =
    srcNodes.length > 0 ? srcNodes.map((n) => ({ n, a: ask(n.name) })) : [{ n: undefined, a: ask(req.src) }];
  const chosen = tries.find((t) => t.a.allowed) ?? tries[0]!;
  const answer = chosen.a;
  const srcAddrNode =
    chosen.n ??
    (answer.srcIp !== undefined ? topology.nodes.find((n) => n.ipStrs.includes(answer.srcIp!)) : undefined);
  const dstAddrNode =
    dstNode ??
    (answer.dstIp !== undefined ? topology.nodes.find((n) => n.ipStrs.includes(answer.dstIp!)) : undefined);
  const receiver = answer.receiver !== undefined ? topology.byName.get(answer.receiver) : undefined;

  const srcLabel =
    srcNodes.length > 1 && !answer.allowed
      ? req.src
      : srcAddrNode
        ? srcAddrNode.hostname
        : (answer.srcIp ?? req.src);
  const dstLabel = dstAddrNode ? dstAddrNode.hostname : (answer.dstIp ?? req.dst);
  const proto = req.proto ?? "tcp";
  const what =
    proto === "icmp"
      ? `${srcLabel} → ${dstLabel} (icmp)`
      : `${srcLabel} → ${dstLabel} port ${req.port}/${proto}`;
  const through = receiver && receiver !== dstAddrNode ? ` on ${receiver.hostname}` : "";
  let explanation: string;
  if (answer.allowed && answer.rule) {
    explanation = `${what}: allowed by ${answer.rule.section}[${answer.rule.index}]${through}`;
  } else if (!receiver) {
    explanation = `${what}: denied, ${answer.reason}`;
  } else {
    explanation = `${what}: denied, no rule allows it${through} (default deny)`;
  }
  if (srcNodes.length > 1) {
    explanation += answer.allowed
      ? ` (from ${srcLabel}, one of ${req.src}'s ${srcNodes.length} machines)`
      : ` (from any of their ${srcNodes.length} machines)`;
  }
  return {
    allowed: answer.allowed,
    rule: answer.rule
      ? { kind: answer.rule.section, index: answer.rule.index, text: ruleText(active.text, answer.rule) }
      : null,
    src: {
      input: req.src,
      ip: answer.srcIp ?? null,
      node: srcAddrNode ? label(srcAddrNode) : null,
      user: srcAddrNode && !srcAddrNode.tagged ? (srcAddrNode.user?.email ?? null) : null,
    },
    dst: {
      input: req.dst,
      ip: answer.dstIp ?? null,
      node: dstAddrNode ? label(dstAddrNode) : null,
      via: receiver && receiver !== dstAddrNode ? label(receiver) : null,
    },
    explanation,
  };
}
