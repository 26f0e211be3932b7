// Direct evaluation of a policy: "can A reach B on port P/proto, and which
// rule allows it?" It walks the policy rule by rule and decides selector
// membership one party at a time, without compiled filters. The admin UI's
// reachability checker and the policy's own `tests` use it, and the property
// test checks the compiler against it, so it is deliberately written apart
// from compile.ts.
import { domainOf, loginsOf, roleMatches, type Selector } from "./aliases";
import {
  formatAddr,
  isInternet,
  isTailnetAddr,
  parseAddr,
  prefixContains,
  prefixesOverlap,
  type Addr,
} from "@trellis/proto/ip";
import type { NetRule, Policy, RuleRef, SshRuleModel } from "./model";
import { DEFAULT_PROTOS, parseProto, portIn, protoHasPorts } from "./ports";
import { addrKey, type NodeInfo, type Role, type Topology } from "./topology";

/** Who owns a party, for user-based selectors. */
export interface Owner {
  /** Identifies the user for "same user" checks (autogroup:self). */
  key: string;
  /** Lowercased login forms (email, name, name@). */
  logins: readonly string[];
  /** The login email as the identity provider gave it. */
  email: string;
  /** Identity-provider groups of the owner. */
  groups?: readonly string[];
  role: Role;
}

/**
 * One end of a connection as the policy sees it: an address (absent for an
 * abstract identity in `tests`), tags, and an owner for untagged devices.
 */
export interface Party {
  addr?: Addr;
  tags: readonly string[];
  /** Undefined for tagged nodes (their identity is their tags) and bare addresses. */
  owner?: Owner;
  /** The topology node, when the party is one. */
  node?: NodeInfo;
}

/** The rule that allowed a connection: its policy entry and which destination (or ssh rule) matched. */
export interface RuleMatch extends RuleRef {
  /** Index into the entry's destinations as the model lists them (acl dst, or grant dst × ip). */
  target: number;
}

/** A party for a topology node, reached at (or coming from) `addr`. */
export function nodeParty(n: NodeInfo, addr?: Addr): Party {
  const u = n.user;
  return {
    addr: addr ?? n.addrs[0],
    tags: n.tags,
    owner:
      !n.tagged && u
        ? { key: `user:${u.index}`, logins: loginsOf(u), email: u.email, role: u.role, groups: u.groups }
        : undefined,
    node: n,
  };
}

/** A party for a user login with no particular device (policy tests). */
export function userParty(login: string, topology: Topology): Party {
  const lower = login.toLowerCase();
  const u = topology.users.find((x) => loginsOf(x).includes(lower));
  return {
    tags: [],
    owner: u
      ? { key: `user:${u.index}`, logins: loginsOf(u), email: u.email, role: u.role, groups: u.groups }
      : { key: `login:${lower}`, logins: [lower], email: login, role: "member" },
  };
}

/**
 * Whether `*` as a packet source covers an address, as Tailscale means it:
 * the tailnet's own address space and every approved subnet route of the
 * tailnet (exit routes excepted). Anything else (a LAN address an exit
 * node forwards, a spoofed public address) is not `*`.
 */
export type WildcardSource = (a: Addr) => boolean;

const wildcards = new WeakMap<Topology, WildcardSource>();

/** The {@link WildcardSource} of a topology, decided address by address from its nodes' routes. */
export function wildcardSource(topology: Topology): WildcardSource {
  let w = wildcards.get(topology);
  if (!w) {
    const routes = topology.nodes.flatMap((n) => n.routes);
    w = (a) => isTailnetAddr(a) || routes.some((r) => prefixContains(r, a));
    wildcards.set(topology, w);
  }
  return w;
}

/**
 * Whether `sel` names `p` by identity or address. `self` and `internet` are
 * decided by the caller. `wildcard` decides `*` for parties with an address
 * (packets); without it, as for SSH, `*` is any party.
 */
export function identityMatches(sel: Selector, p: Party, policy: Policy, wildcard?: WildcardSource): boolean {
  const untaggedOwner = p.tags.length === 0 ? p.owner : undefined;
  switch (sel.kind) {
    case "any":
      // A party without an address is an identity of the tailnet (a user or a tag in `tests`).
      return wildcard === undefined || p.addr === undefined || wildcard(p.addr);
    case "prefix":
      return p.addr !== undefined && prefixContains(sel.prefix, p.addr);
    case "user":
      return untaggedOwner !== undefined && untaggedOwner.logins.includes(sel.login);
    case "domain":
      return untaggedOwner !== undefined && domainOf(untaggedOwner.email) === sel.domain;
    case "group": {
      const members = policy.names.groups.get(sel.name) ?? [];
      return (
        untaggedOwner !== undefined &&
        (members.some((m) => untaggedOwner.logins.includes(m.toLowerCase())) ||
          (untaggedOwner.groups ?? []).includes(sel.name.slice("group:".length)))
      );
    }
    case "tag":
      return p.tags.includes(sel.name);
    case "autogroup":
      switch (sel.name) {
        case "member":
          return untaggedOwner !== undefined;
        case "tagged":
          return p.tags.length > 0;
        case "admin":
        case "auditor":
          return untaggedOwner !== undefined && roleMatches(sel.name, untaggedOwner.role);
        case "danger-all":
          return true;
        default:
          return false;
      }
  }
}

/** Whether src and dst are untagged devices of one user. */
function sameUser(src: Party, dst: Party): boolean {
  return (
    src.tags.length === 0 &&
    dst.tags.length === 0 &&
    !!src.owner &&
    !!dst.owner &&
    src.owner.key === dst.owner.key
  );
}

/**
 * Where a packet lands: at a topology node `receiver` (with `dst.addr` its
 * own address, an address in one of its subnet routes, or an internet
 * address it forwards as an exit node), or, for abstract tests, at `dst`
 * itself with no receiver.
 */
export interface Destination {
  party: Party;
  receiver?: NodeInfo;
}

function targetMatches(rule: NetRule, sel: Selector, src: Party, dst: Destination, policy: Policy): boolean {
  const d = dst.party;
  const n = dst.receiver;
  const isSelf = sel.kind === "autogroup" && sel.name === "self";
  const isNet = sel.kind === "autogroup" && sel.name === "internet";
  if (!n) {
    // Abstract destination (tests): match by what the destination is.
    if (isSelf) return sameUser(src, d) && !!d.owner;
    if (isNet) return d.addr !== undefined && isInternet(d.addr);
    return identityMatches(sel, d, policy);
  }
  const a = d.addr!;
  if (rule.via) {
    if (!n.tags.some((t) => rule.via!.includes(t))) return false;
    if (sel.kind === "prefix")
      return prefixContains(sel.prefix, a) && n.routes.some((r) => prefixesOverlap(r, sel.prefix));
    return isNet && isInternet(a) && (a.v === 4 ? n.exit4 : n.exit6);
  }
  const own = n.addrs.some((x) => x.v === a.v && x.n === a.n);
  if (sel.kind === "any") return true;
  if (sel.kind === "prefix") {
    // A CIDR rule is sent to nodes with an address inside it or an approved route overlapping it.
    const concerns =
      n.addrs.some((x) => prefixContains(sel.prefix, x)) ||
      n.routes.some((r) => prefixesOverlap(r, sel.prefix));
    return concerns && prefixContains(sel.prefix, a);
  }
  if (isNet) return isInternet(a) && (a.v === 4 ? n.exit4 : n.exit6);
  if (!own) return false;
  if (isSelf) return sameUser(src, nodeParty(n)) && src.node !== undefined;
  return identityMatches(sel, nodeParty(n, a), policy);
}

/**
 * The first rule allowing `src` to reach `dst` with IANA protocol `proto`
 * on `port`, or null (default deny). Ports are ignored for protocols without
 * them, as packet filters do.
 */
export function evaluate(
  policy: Policy,
  topology: Topology,
  src: Party,
  dst: Destination,
  proto: number,
  port: number,
): RuleMatch | null {
  const wildcard = wildcardSource(topology);
  for (const rule of policy.rules) {
    if (!rule.src.some((s) => identityMatches(s, src, policy, wildcard))) continue;
    for (let t = 0; t < rule.targets.length; t++) {
      const target = rule.targets[t]!;
      if (!(target.protos ?? DEFAULT_PROTOS).includes(proto)) continue;
      if (protoHasPorts(proto) && !portIn(target.ports, port)) continue;
      if (targetMatches(rule, target.sel, src, dst, policy)) return { ...rule.ref, target: t };
    }
  }
  return null;
}

/** What an SSH connection gets: the action of the first matching ssh rule. */
export interface SshMatch extends RuleRef {
  action: "accept" | "check";
}

function sshUserAllowed(rule: SshRuleModel, localUser: string, src: Party): boolean {
  if (rule.users.includes(localUser) || (rule.nonroot && localUser !== "root")) return true;
  // localpart:*@<domain>: a user of the domain logs in as their login's local part.
  const owner = src.tags.length === 0 ? src.owner : undefined;
  if (!owner || rule.localparts.length === 0) return false;
  const at = owner.email.lastIndexOf("@");
  return at > 0 && rule.localparts.includes(domainOf(owner.email)) && owner.email.slice(0, at) === localUser;
}

/**
 * The ssh rule letting `src` log in to `dst` as `localUser`, or null: the
 * first matching `check` rule, else the first matching `accept` rule (as
 * Tailscale orders a destination's rules, a check cannot be skipped by an
 * accept). A user's own devices (autogroup:self, or a user, group or
 * autogroup:member destination) accept only that same user; tagged devices
 * accept any listed source.
 */
export function evaluateSsh(policy: Policy, src: Party, dst: Party, localUser: string): SshMatch | null {
  for (const action of ["check", "accept"] as const) {
    const m = firstSshMatch(policy, src, dst, localUser, action);
    if (m) return m;
  }
  return null;
}

function firstSshMatch(
  policy: Policy,
  src: Party,
  dst: Party,
  localUser: string,
  action: "accept" | "check",
): SshMatch | null {
  for (const rule of policy.ssh) {
    if (rule.action !== action) continue;
    if (!rule.src.some((s) => identityMatches(s, src, policy))) continue;
    const dstOk = rule.dst.some((sel) => {
      if (sel.kind === "tag" || (sel.kind === "autogroup" && sel.name === "tagged"))
        return identityMatches(sel, dst, policy);
      if (sel.kind === "autogroup" && sel.name === "self") return sameUser(src, dst);
      return identityMatches(sel, dst, policy) && sameUser(src, dst);
    });
    if (dstOk && sshUserAllowed(rule, localUser, src)) return { ...rule.ref, action: rule.action };
  }
  return null;
}

/** A reachability question from the admin UI: node names or IPs, a port and a protocol. */
export interface ReachQuery {
  /** Source node name or IP address. */
  src: string;
  /** Destination node name, or an IP (a node's, one behind a subnet router, or on the internet). */
  dst: string;
  port: number;
  /** Protocol name or number; default tcp. */
  proto?: string | number;
  /** For addresses that are not a node's: the router or exit node to ask (default: every candidate). */
  via?: string;
}

/** The answer: allowed or not, by which rule, through which node. */
export interface ReachAnswer {
  allowed: boolean;
  rule?: RuleMatch;
  /** Node whose filter decides (the destination, or the subnet router / exit node). */
  receiver?: string;
  srcIp?: string;
  dstIp?: string;
  /** One sentence for people. */
  reason: string;
}

/** Error in a reachability query (unknown node, bad address or protocol). */
export class ReachQueryError extends Error {
  override readonly name = "ReachQueryError";
}

/** Answer a {@link ReachQuery} against a topology. */
export function canReach(policy: Policy, topology: Topology, q: ReachQuery): ReachAnswer {
  const proto = parseProto(q.proto ?? "tcp");
  if (!proto.ok) throw new ReachQueryError(proto.error);
  const protoNum = proto.value?.[0] ?? 6;
  if (!Number.isInteger(q.port) || q.port < 0 || q.port > 65535)
    throw new ReachQueryError(`port ${q.port} is not 0-65535`);

  const srcNode = topology.byName.get(q.src);
  const srcAddrGiven = srcNode ? undefined : parseAddr(q.src);
  if (!srcNode && !srcAddrGiven)
    throw new ReachQueryError(`"${q.src}" is neither a node name nor an IP address`);
  const dstNode = topology.byName.get(q.dst);
  const dstAddrGiven = dstNode ? undefined : parseAddr(q.dst);
  if (!dstNode && !dstAddrGiven)
    throw new ReachQueryError(`"${q.dst}" is neither a node name nor an IP address`);

  // Pick one address family both ends have, preferring IPv4.
  const srcAddrs = srcNode ? srcNode.addrs : [srcAddrGiven!];
  const dstAddrs = dstNode ? dstNode.addrs : [dstAddrGiven!];
  const family = ([4, 6] as const).find(
    (v) => srcAddrs.some((a) => a.v === v) && dstAddrs.some((a) => a.v === v),
  );
  if (!family) throw new ReachQueryError(`${q.src} and ${q.dst} have no IP version in common`);
  const srcAddr = srcAddrs.find((a) => a.v === family)!;
  const dstAddr = dstAddrs.find((a) => a.v === family)!;
  const srcOwner = srcNode ?? topology.byAddr.get(addrKey(srcAddr));
  const src: Party = srcOwner ? nodeParty(srcOwner, srcAddr) : { addr: srcAddr, tags: [] };

  let receivers: NodeInfo[];
  const owner = dstNode ?? topology.byAddr.get(addrKey(dstAddr));
  if (owner) receivers = [owner];
  else if (q.via !== undefined) {
    const v = topology.byName.get(q.via);
    if (!v) throw new ReachQueryError(`unknown node "${q.via}"`);
    receivers = [v];
  } else {
    const routed = topology.nodes
      .filter((n) => n.routes.some((r) => prefixContains(r, dstAddr)))
      .sort((a, b) => longest(b, dstAddr) - longest(a, dstAddr) || a.index - b.index);
    const exits = isInternet(dstAddr) ? topology.nodes.filter((n) => (family === 4 ? n.exit4 : n.exit6)) : [];
    receivers = [...routed, ...exits.filter((n) => !routed.includes(n))];
  }
  const base = { srcIp: formatAddr(srcAddr), dstIp: formatAddr(dstAddr) };
  if (receivers.length === 0) {
    return {
      allowed: false,
      ...base,
      reason: `no node serves ${formatAddr(dstAddr)} (no node address, approved subnet route or exit node)`,
    };
  }
  for (const n of receivers) {
    const party = owner ? nodeParty(owner, dstAddr) : { addr: dstAddr, tags: [] };
    const m = evaluate(policy, topology, src, { party, receiver: n }, protoNum, q.port);
    if (m) {
      return {
        allowed: true,
        rule: m,
        receiver: n.name,
        ...base,
        reason: `allowed by ${m.section}[${m.index}] on ${n.name}`,
      };
    }
  }
  return {
    allowed: false,
    receiver: receivers[0]!.name,
    ...base,
    reason: "no rule allows it (default deny)",
  };
}

function longest(n: NodeInfo, a: Addr): number {
  return Math.max(-1, ...n.routes.filter((r) => prefixContains(r, a)).map((r) => r.bits));
}
