// Compilation of a policy into per-node packet filters in the shape of
// Tailscale's tailcfg.FilterRule. Each node gets only the rules that can
// match a packet it receives: rules whose destinations include its own
// addresses, its approved subnet routes or (for autogroup:internet) its exit
// routes. Output order follows the policy, so the same input always gives the
// same bytes.
import { Resolver, type Selector } from "./aliases";
import {
  comparePrefix,
  formatFilterIP,
  formatPrefix,
  internetPrefixes,
  isTailnetAddr,
  lastAddr,
  prefixContains,
  prefixCovers,
  prefixesOverlap,
  TAILNET_SOURCES,
  type Addr,
  type AddrRange,
  type Prefix,
} from "@trellis/proto/ip";
import type { NetRule, Policy, Target } from "./model";
import type { PortRange } from "./ports";
import type { NodeInfo, Topology, UserInfo } from "./topology";

/** A destination address (or `*`) and port range, as Tailscale's `tailcfg.NetPortRange`. */
export interface NetPortRange {
  readonly IP: string;
  readonly Ports: Readonly<PortRange>;
}

/** Application capabilities granted on some destinations, as Tailscale's `tailcfg.CapGrant`. */
export interface CapGrant {
  /** Destination prefixes (`100.64.0.1/32`, `fd7a:…/128`, or a routed subnet). */
  readonly Dsts: readonly string[];
  /** Capability name → values; a capability Tailscale grants without values (a companion) is null. */
  readonly CapMap: Readonly<Record<string, readonly unknown[] | null>>;
}

/**
 * One packet-filter rule, as Tailscale's `tailcfg.FilterRule`: packets from
 * `SrcIPs` to `DstPorts` with a protocol in `IPProto` are accepted. `IPProto`
 * is omitted for the default (TCP, UDP, ICMPv4, ICMPv6). A rule with
 * `CapGrant` instead of `DstPorts` grants application capabilities and
 * accepts no packets by itself.
 *
 * Compiled filters share arrays between nodes (one SrcIPs list serves every
 * node a rule reaches), which is why everything here is read-only.
 */
export interface FilterRule {
  readonly SrcIPs: readonly string[];
  readonly DstPorts?: readonly NetPortRange[];
  readonly IPProto?: readonly number[];
  readonly CapGrant?: readonly CapGrant[];
}

/** Packet filters by node name. */
export type Filters = Record<string, readonly FilterRule[]>;

// A target delivered to a node, packed in one number: rule index in the high
// part, target index in the low 20 bits. App destinations come after the
// targets (index targets.length + appDst index).
const TARGET_BITS = 2 ** 20;

/** Shortest run of consecutive source addresses written as a range. */
const MIN_RUN = 4;

function isSelf(sel: Selector): boolean {
  return sel.kind === "autogroup" && sel.name === "self";
}

interface SrcInfo {
  /** `*` is a source: the tailnet's address space and every approved subnet route. */
  any: boolean;
  /** `autogroup:danger-all` is a source: every address, in the tailnet or not. */
  all: boolean;
  /**
   * `autogroup:self` is a source, which only a companion of a grant to
   * autogroup:self has: on each node it adds the devices of the node's user.
   */
  self: boolean;
  /** Membership by node index. */
  member: Uint8Array;
  members: NodeInfo[];
  literals: Prefix[];
  ips: string[];
}

/** One entry of the source list `*` stands for. */
interface WildcardEntry extends AddrRange {
  readonly text: string;
}

/** What the compiler needs of a topology regardless of policy. */
interface Layout {
  readonly addrRank: Int32Array;
  readonly rankToIp: readonly string[];
  readonly rankToPrefix: readonly Prefix[];
  readonly routers: readonly NodeInfo[];
  readonly exitNodes: readonly NodeInfo[];
  readonly owned: readonly NodeInfo[];
  /**
   * What `*` as a source stands for in this tailnet, as Tailscale compiles
   * it: the tailnet's address space and every approved subnet route (exit
   * routes excepted), sorted. A packet from anywhere else is not from `*`.
   */
  readonly wildcard: readonly WildcardEntry[];
  /** The approved subnet routes of the tailnet, once each. */
  readonly routes: readonly Prefix[];
}

// A new policy over the same nodes (the control plane keeps the topology
// when no node changed) reuses the layout: sorting 20,000 addresses by
// bigint was most of a 10,000-node compile.
const layouts = new WeakMap<Topology, Layout>();

function layoutOf(topology: Topology): Layout {
  let layout = layouts.get(topology);
  if (layout) return layout;
  const all = topology.nodes.flatMap((n) => n.addrs.map((a, i) => ({ a, n, i })));
  all.sort((x, y) => (x.a.v !== y.a.v ? x.a.v - y.a.v : x.a.n < y.a.n ? -1 : x.a.n > y.a.n ? 1 : 0));
  const addrRank = new Int32Array(topology.nodes.length * 2).fill(-1);
  all.forEach(({ n, i }, rank) => (addrRank[n.index * 2 + i] = rank));
  const routes = new Map<string, Prefix>();
  for (const n of topology.nodes) for (const p of n.routes) routes.set(formatFilterIP(p), p);
  const wildcard: WildcardEntry[] = [
    ...TAILNET_SOURCES.map((s) => ({ ...s.range, text: s.text })),
    ...[...routes].map(([text, p]) => ({ v: p.v, lo: p.base, hi: lastAddr(p), text })),
  ].sort(compareEntries);
  layout = {
    addrRank,
    rankToIp: all.map(({ n, i }) => n.ipStrs[i]!),
    rankToPrefix: all.map(({ a }) => ({ v: a.v, base: a.n, bits: a.v === 4 ? 32 : 128 })),
    routers: topology.nodes.filter((n) => n.routes.length > 0),
    exitNodes: topology.nodes.filter((n) => n.exit4 || n.exit6),
    owned: topology.nodes.filter((n) => !n.tagged && n.user),
    wildcard,
    routes: [...routes.values()],
  };
  layouts.set(topology, layout);
  return layout;
}

/** IPv4 first, then by first address, the wider range first (as {@link comparePrefix}). */
function compareEntries(a: AddrRange, b: AddrRange): number {
  if (a.v !== b.v) return a.v - b.v;
  if (a.lo !== b.lo) return a.lo < b.lo ? -1 : 1;
  return a.hi === b.hi ? 0 : a.hi > b.hi ? -1 : 1;
}

/**
 * Compiles filters for a whole topology. Selector resolutions and source
 * address lists are computed once and shared by all nodes, which keeps a
 * 10,000-node tailnet well under a second.
 */
export class FilterCompiler {
  private readonly resolver: Resolver;
  private readonly srcCache = new Map<string, SrcInfo>();
  /** The policy's rules with each grant's companions after it: what this compiler indexes rules by. */
  private readonly rules: readonly NetRule[];
  private readonly srcOfRule: SrcInfo[];
  private readonly selfCache = new Map<string, string[]>();
  /** Global address order of each node's addresses, for sorting without bigint comparisons. */
  private readonly addrRank: Int32Array;
  private readonly rankToIp: readonly string[];
  private readonly rankToPrefix: readonly Prefix[];
  /** Delivered targets per node index, in policy order. */
  private readonly delivered: number[][];
  private readonly routers: readonly NodeInfo[];
  private readonly exitNodes: readonly NodeInfo[];
  private readonly owned: readonly NodeInfo[];
  private readonly wildcard: readonly WildcardEntry[];
  private readonly routes: readonly Prefix[];

  constructor(
    readonly policy: Policy,
    readonly topology: Topology,
  ) {
    this.resolver = new Resolver(policy.names, topology);
    ({
      addrRank: this.addrRank,
      rankToIp: this.rankToIp,
      rankToPrefix: this.rankToPrefix,
      routers: this.routers,
      exitNodes: this.exitNodes,
      owned: this.owned,
      wildcard: this.wildcard,
      routes: this.routes,
    } = layoutOf(topology));
    this.rules = policy.rules.flatMap((r) => (r.companions ? [r, ...r.companions] : [r]));
    this.srcOfRule = this.rules.map((r) => this.srcInfo(r.src));
    this.delivered = topology.nodes.map(() => []);
    this.rules.forEach((rule, r) => this.deliver(rule, r));
  }

  private srcInfo(src: readonly Selector[]): SrcInfo {
    const key = src.map((s) => s.text).join("\n");
    const cached = this.srcCache.get(key);
    if (cached) return cached;
    const member = new Uint8Array(this.topology.nodes.length);
    const members: NodeInfo[] = [];
    const literals: Prefix[] = [];
    let any = false;
    let all = false;
    let self = false;
    for (const s of src) {
      if (s.kind === "any") any = true;
      else if (s.kind === "autogroup" && s.name === "danger-all") all = true;
      else if (s.kind === "autogroup" && s.name === "self") self = true;
      else if (s.kind === "prefix") literals.push(s.prefix);
      else {
        for (const n of this.resolver.nodes(s)) {
          if (member[n.index]) continue;
          member[n.index] = 1;
          members.push(n);
        }
      }
    }
    const info = {
      any,
      all,
      self,
      member,
      members,
      literals,
      ips: this.sourceList(any, all, members, literals),
    };
    this.srcCache.set(key, info);
    return info;
  }

  /** SrcIPs text of a source list, resolved. */
  private sourceList(
    any: boolean,
    all: boolean,
    members: readonly NodeInfo[],
    literals: readonly Prefix[],
  ): string[] {
    if (all) return ["*"];
    if (any) return this.wildcardSources(members, literals);
    // Drop literal prefixes covered by another (keeping the first of duplicates),
    // and node addresses inside a literal prefix: they add nothing.
    const lit = [...literals]
      .sort(comparePrefix)
      .filter(
        (p, i, arr) => !arr.some((q, j) => j !== i && prefixCovers(q, p) && (q.bits < p.bits || j < i)),
      );
    const ranks: number[] = [];
    for (const n of members) {
      for (let i = 0; i < n.addrs.length; i++) {
        if (lit.length > 0 && lit.some((p) => prefixContains(p, n.addrs[i]!))) continue;
        ranks.push(this.addrRank[n.index * 2 + i]!);
      }
    }
    const runs = this.runs(Int32Array.from(ranks).sort());
    return lit.length === 0
      ? runs.map((e) => e.s)
      : [...runs, ...lit.map((p) => ({ p, s: formatFilterIP(p) }))]
          .sort((x, y) => comparePrefix(x.p, y.p))
          .map((e) => e.s);
  }

  /** SrcIPs of a rule with autogroup:self among its sources, on a node of `user`: the rest plus the user's devices. */
  private withOwnDevices(r: number, user: UserInfo): readonly string[] {
    const key = `own:${r}:${user.index}`;
    let ips = this.selfCache.get(key);
    if (!ips) {
      const src = this.srcOfRule[r]!;
      const own = this.resolver.nodesOfUser(user).filter((n) => !src.member[n.index]);
      ips = this.sourceList(src.any, src.all, [...src.members, ...own], src.literals);
      this.selfCache.set(key, ips);
    }
    return ips;
  }

  /** Whether `*` as a source covers `a`: a tailnet address, or one inside an approved subnet route. */
  private inWildcard(a: Addr): boolean {
    return isTailnetAddr(a) || this.routes.some((p) => prefixContains(p, a));
  }

  /**
   * SrcIPs of a source list with `*`: the wildcard's entries, then whatever
   * the list's other sources add outside them (a CIDR beyond the tailnet
   * and its routes; node addresses all lie inside), in one sorted list.
   */
  private wildcardSources(members: readonly NodeInfo[], literals: readonly Prefix[]): string[] {
    const extra: WildcardEntry[] = [];
    const covered = (r: AddrRange) => this.wildcard.some((e) => e.v === r.v && e.lo <= r.lo && r.hi <= e.hi);
    for (const p of literals) {
      const r = { v: p.v, lo: p.base, hi: lastAddr(p), text: formatFilterIP(p) };
      if (!covered(r) && !extra.some((e) => e.v === r.v && e.lo <= r.lo && r.hi <= e.hi)) extra.push(r);
    }
    for (const n of members) {
      n.addrs.forEach((a, i) => {
        if (this.inWildcard(a) || literals.some((p) => prefixContains(p, a))) return;
        extra.push({ v: a.v, lo: a.n, hi: a.n, text: n.ipStrs[i]! });
      });
    }
    if (extra.length === 0) return this.wildcard.map((e) => e.text);
    return [...this.wildcard, ...extra].sort(compareEntries).map((e) => e.text);
  }

  /**
   * Sorted address ranks as filter text. Runs of consecutive addresses (the
   * control server hands addresses out in order, so big groups are mostly
   * runs) become Tailscale's `first-last` range form, which keeps filters of
   * large tailnets small; short runs stay as single addresses.
   */
  private runs(ranks: Int32Array): { p: Prefix; s: string }[] {
    const out: { p: Prefix; s: string }[] = [];
    for (let i = 0; i < ranks.length;) {
      let j = i;
      while (j + 1 < ranks.length) {
        const a = this.rankToPrefix[ranks[j]!]!;
        const b = this.rankToPrefix[ranks[j + 1]!]!;
        if (a.v !== b.v || b.base !== a.base + 1n) break;
        j++;
      }
      if (j - i + 1 >= MIN_RUN) {
        const first = ranks[i]!;
        out.push({ p: this.rankToPrefix[first]!, s: `${this.rankToIp[first]}-${this.rankToIp[ranks[j]!]}` });
      } else {
        for (let k = i; k <= j; k++)
          out.push({ p: this.rankToPrefix[ranks[k]!]!, s: this.rankToIp[ranks[k]!]! });
      }
      i = j + 1;
    }
    return out;
  }

  /** Record, per node, which targets of `rule` concern it. */
  private deliver(rule: NetRule, r: number): void {
    const push = (nodes: Iterable<NodeInfo>, t: number) => {
      for (const n of nodes) this.delivered[n.index]!.push(r * TARGET_BITS + t);
    };
    const nodes = this.topology.nodes;
    const place = (sel: Selector, t: number, app: boolean) => {
      if (rule.via) {
        // Via: only the named routers carry (and filter) this traffic.
        const via = (n: NodeInfo) => n.tags.some((tag) => rule.via!.includes(tag));
        if (sel.kind === "prefix") {
          push(
            this.routers.filter((n) => via(n) && n.routes.some((p) => prefixesOverlap(p, sel.prefix))),
            t,
          );
        } else push(this.exitNodes.filter(via), t);
        return;
      }
      switch (sel.kind) {
        case "any":
          push(nodes, t);
          return;
        case "prefix": {
          const inside = new Set(this.resolver.nodes(sel));
          for (const n of this.routers)
            if (n.routes.some((p) => prefixesOverlap(p, sel.prefix))) inside.add(n);
          push(
            [...inside].sort((a, b) => a.index - b.index),
            t,
          );
          return;
        }
        case "autogroup":
          if (sel.name === "self") push(this.owned, t);
          else if (sel.name === "internet") {
            if (!app) push(this.exitNodes, t);
          } else push(this.resolver.nodes(sel), t);
          return;
        default:
          push(this.resolver.nodes(sel), t);
      }
    };
    rule.targets.forEach((target, t) => place(target.sel, t, false));
    if (rule.app) rule.appDst.forEach((sel, i) => place(sel, rule.targets.length + i, true));
  }

  /** SrcIPs of a rule as seen by `node` through autogroup:self: the sources owned by the node's user. */
  private selfSrc(r: number, user: UserInfo): string[] {
    const key = `${r}:${user.index}`;
    let ips = this.selfCache.get(key);
    if (!ips) {
      const src = this.srcOfRule[r]!;
      const ranks: number[] = [];
      for (const n of this.resolver.nodesOfUser(user)) {
        n.addrs.forEach((a, i) => {
          if (
            src.all ||
            (src.any && this.inWildcard(a)) ||
            src.member[n.index] ||
            src.literals.some((p) => prefixContains(p, a))
          ) {
            ranks.push(this.addrRank[n.index * 2 + i]!);
          }
        });
      }
      ips = this.runs(Int32Array.from(ranks).sort()).map((e) => e.s);
      this.selfCache.set(key, ips);
    }
    return ips;
  }

  /** The filter of one node. */
  filterFor(node: NodeInfo): FilterRule[] {
    const out: FilterRule[] = [];
    const entries = this.delivered[node.index]!;
    for (let i = 0; i < entries.length;) {
      const r = Math.floor(entries[i]! / TARGET_BITS);
      const ts: number[] = [];
      while (i < entries.length && Math.floor(entries[i]! / TARGET_BITS) === r)
        ts.push(entries[i++]! % TARGET_BITS);
      this.emitRule(node, r, ts, out);
    }
    return out;
  }

  private emitRule(node: NodeInfo, r: number, ts: number[], out: FilterRule[]): void {
    const rule = this.rules[r]!;
    const via = rule.via !== undefined;
    // The common case, one destination of the rule concerns this node: no grouping, no de-duplication.
    if (ts.length === 1 && ts[0]! < rule.targets.length) {
      const target = rule.targets[ts[0]!]!;
      const SrcIPs = this.srcFor(node, r, isSelf(target.sel));
      if (SrcIPs.length === 0) return;
      const DstPorts: NetPortRange[] = [];
      for (const IP of this.dstIPs(node, target.sel, via))
        for (const Ports of target.ports) DstPorts.push({ IP, Ports });
      if (DstPorts.length > 0)
        out.push(target.protos ? { SrcIPs, DstPorts, IPProto: target.protos } : { SrcIPs, DstPorts });
      return;
    }
    // Group targets by (self, protocols): each group is one FilterRule.
    const groups = new Map<string, { self: boolean; protos: number[] | null; targets: Target[] }>();
    const apps: { self: boolean; sel: Selector }[] = [];
    for (const t of ts) {
      if (t >= rule.targets.length) {
        const sel = rule.appDst[t - rule.targets.length]!;
        apps.push({ self: isSelf(sel), sel });
        continue;
      }
      const target = rule.targets[t]!;
      const self = isSelf(target.sel);
      const key = `${self ? 1 : 0}|${target.protos?.join(",") ?? ""}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { self, protos: target.protos, targets: [] }));
      g.targets.push(target);
    }
    // Tailscale lists a rule's non-self part before its autogroup:self part.
    for (const self of [false, true]) {
      for (const g of groups.values()) {
        if (g.self !== self) continue;
        const SrcIPs = this.srcFor(node, r, self);
        if (SrcIPs.length === 0) continue;
        const seen = new Set<string>();
        const DstPorts: NetPortRange[] = [];
        for (const t of g.targets) {
          for (const IP of this.dstIPs(node, t.sel, via)) {
            for (const Ports of t.ports) {
              const k = `${IP}|${Ports.First}|${Ports.Last}`;
              if (seen.has(k)) continue;
              seen.add(k);
              DstPorts.push({ IP, Ports });
            }
          }
        }
        if (DstPorts.length === 0) continue;
        out.push(g.protos ? { SrcIPs, DstPorts, IPProto: g.protos } : { SrcIPs, DstPorts });
      }
    }
    if (rule.app) {
      for (const self of [false, true]) {
        const dsts = new Map<string, Prefix>();
        for (const a of apps) {
          if (a.self !== self) continue;
          for (const p of this.capDsts(node, a.sel)) dsts.set(formatPrefix(p), p);
        }
        const SrcIPs = this.srcFor(node, r, self);
        // Sources that resolve to nobody still carry the capability grant (empty
        // SrcIPs), as Tailscale emits it; only autogroup:self narrows it away.
        if (dsts.size === 0 || (self && SrcIPs.length === 0) || rule.src.length === 0) continue;
        const Dsts = [...dsts.values()].sort(comparePrefix).map(formatPrefix);
        out.push({ SrcIPs, CapGrant: [{ Dsts, CapMap: rule.app }] });
      }
    }
  }

  /** SrcIPs of rule `r` on `node`: the rule's sources, or for autogroup:self those of the node's owner. */
  private srcFor(node: NodeInfo, r: number, self: boolean): readonly string[] {
    if (!self) {
      const src = this.srcOfRule[r]!;
      return src.self && node.user ? this.withOwnDevices(r, node.user) : src.ips;
    }
    return node.user ? this.selfSrc(r, node.user) : [];
  }

  /** DstPorts addresses of a delivered target on `node`. */
  private dstIPs(node: NodeInfo, sel: Selector, via: boolean): readonly string[] {
    switch (sel.kind) {
      case "any":
        return ["*"];
      case "prefix":
        return [formatFilterIP(sel.prefix)];
      case "autogroup":
        if (sel.name === "internet") {
          const { v4, v6 } = internetPrefixes();
          return [...(node.exit4 ? v4 : []), ...(node.exit6 ? v6 : [])].map(formatFilterIP);
        }
        return node.ipStrs;
      default:
        return via ? [] : node.ipStrs;
    }
  }

  /** CapGrant destinations on `node`: its own addresses, or a routed subnet as written. */
  private capDsts(node: NodeInfo, sel: Selector): Prefix[] {
    const own = node.addrs.map((a) => ({ v: a.v, base: a.n, bits: a.v === 4 ? 32 : 128 }));
    if (sel.kind !== "prefix") return own;
    const out = own.filter((p) => prefixContains(sel.prefix, { v: p.v, n: p.base }));
    if (node.routes.some((p) => prefixesOverlap(p, sel.prefix))) out.push(sel.prefix);
    return out;
  }

  /** Filters of every node, keyed by node name in name order. */
  all(): Filters {
    const out: Filters = {};
    for (const n of this.topology.nodes) out[n.name] = this.filterFor(n);
    return out;
  }
}

/** Compile packet filters for every node of `topology`: `{ "<node name>": FilterRule[] }`. */
export function compileFilters(policy: Policy, topology: Topology): Filters {
  return new FilterCompiler(policy, topology).all();
}
