// One consistent view of the tailnet — nodes, users and the policy in force —
// from which every node's map is cut. Built once per change (NetmapService)
// and shared by all open streams: the topology is parsed and filters
// compiled once, each node's filter and peer list computed on first use.
import type { Models } from "@trellis/db";
import type { DnsConfig, FilterRule, FullMap, Peer, RelayMap, SelfNode, SSHRule } from "@trellis/proto";
import { jsonList } from "./errors-util";
import { peerOf, selfOf } from "./node-view";
import {
  FilterCompiler,
  compileSsh,
  parseTopology,
  type NodeInfo,
  type SshPolicies,
  type Topology,
  type TopologyInput,
} from "./policy/index";
import type { FilterRule as EngineFilterRule, SSHRule as EngineSSHRule } from "./policy/index";
import {
  formatPrefix,
  lastAddr,
  parseAddr,
  parsePrefix,
  prefixesOverlap,
  TAILNET_V4,
  TAILNET_V6,
} from "./policy/ip";
import type { ActivePolicy } from "./policy-store";

// The engine's output is the wire shape; fail the build if they drift apart.
// (The engine's arrays are read-only because compiled filters share them; the
// map only serialises them.)
type Writable<T> = T extends readonly (infer U)[]
  ? Writable<U>[]
  : T extends object
    ? { -readonly [K in keyof T]: Writable<T[K]> }
    : T;
type Assignable<T, _U extends T> = true;
export type _FilterRuleIsWire = Assignable<FilterRule, Writable<EngineFilterRule>>;
export type _SSHRuleIsWire = Assignable<SSHRule, Writable<EngineSSHRule>>;

/** A full map without its stream sequence number. */
export type NodeMap = Omit<FullMap, "seq">;

interface Entry {
  row: Models.Node;
  info: NodeInfo;
  /** Routes in effect, for allowedIPs: approved subnet routes, and exit routes of approved exit nodes. */
  routes: string[];
  peer: Peer;
  /** The node as it sees itself, and its SSH policy, made on first use. */
  self?: SelfNode;
  ssh?: { rules: SSHRule[] };
}

/**
 * Who sees whom, by topology node index; computed once per topology and
 * shared by patched snapshots. `reach[i]`: nodes whose packets node i's
 * filter accepts (null: everyone, a "*" source). A node's peers are those it
 * accepts packets from plus those that accept packets from it.
 */
interface Visibility {
  reach: (Int32Array | null)[];
  /** Who reaches each node (the transpose of `reach`). */
  reverse: Int32Array[];
  /** Nodes accepting packets from everyone: everyone's peers. */
  acceptAll: number[];
}

/**
 * Which nodes a filter source (`*`, an address, a CIDR or an `a-b` range)
 * covers: nodes with an address inside it, and subnet routers whose approved
 * routes overlap it (their subnets' packets arrive through them). Sorted
 * addresses and a binary search keep this O(log N + k); results are cached
 * per source text, since many nodes share the same source lists.
 */
class AddrIndex {
  private readonly v4: { n: bigint; i: number }[] = [];
  private readonly v6: { n: bigint; i: number }[] = [];
  private readonly routers: { v: 4 | 6; lo: bigint; hi: bigint; i: number }[] = [];
  private readonly cache = new Map<string, number[]>();

  constructor(topology: Topology) {
    // Source lists are mostly node addresses in the compiler's canonical
    // text: those resolve by lookup, without parsing (BigInt) — unless some
    // subnet route overlaps the tailnet's own ranges and could cover them too.
    let routesInTailnet = false;
    for (const n of topology.nodes) {
      for (const a of n.addrs) (a.v === 4 ? this.v4 : this.v6).push({ n: a.n, i: n.index });
      for (const r of n.routes) {
        this.routers.push({ v: r.v, lo: r.base, hi: lastAddr(r), i: n.index });
        if (prefixesOverlap(r, TAILNET_V4) || prefixesOverlap(r, TAILNET_V6)) routesInTailnet = true;
      }
    }
    if (!routesInTailnet) {
      for (const n of topology.nodes) for (const t of n.ipStrs) this.cache.set(t, [n.index]);
    }
    const cmp = (a: { n: bigint }, b: { n: bigint }) => (a.n < b.n ? -1 : a.n > b.n ? 1 : 0);
    this.v4.sort(cmp);
    this.v6.sort(cmp);
  }

  covering(text: string): number[] {
    let out = this.cache.get(text);
    if (out) return out;
    let v: 4 | 6;
    let lo: bigint;
    let hi: bigint;
    const dash = text.indexOf("-");
    if (dash >= 0) {
      const a = parseAddr(text.slice(0, dash));
      const b = parseAddr(text.slice(dash + 1));
      if (!a || !b || a.v !== b.v) return [];
      [v, lo, hi] = [a.v, a.n, b.n];
    } else {
      const p = parsePrefix(text);
      if (!p) return [];
      [v, lo, hi] = [p.v, p.base, lastAddr(p)];
    }
    const list = v === 4 ? this.v4 : this.v6;
    let l = 0;
    let h = list.length;
    while (l < h) {
      const m = (l + h) >> 1;
      if (list[m]!.n < lo) l = m + 1;
      else h = m;
    }
    const set = new Set<number>();
    for (let k = l; k < list.length && list[k]!.n <= hi; k++) set.add(list[k]!.i);
    for (const r of this.routers) if (r.v === v && r.lo <= hi && r.hi >= lo) set.add(r.i);
    out = [...set];
    this.cache.set(text, out);
    return out;
  }
}

/** Nodes that take part in the tailnet: authorized, addressed, key not expired. */
export function isActive(n: Models.Node, now: Date): boolean {
  return n.authorized && n.ipv4 !== null && (n.expiresAt === null || n.expiresAt > now);
}

/**
 * Nodes awaiting an admin's approval: addressed and unexpired but not
 * authorized. They get a map with themselves only (no peers, an empty
 * filter) and are nobody's peer.
 */
export function isPending(n: Models.Node, now: Date): boolean {
  return !n.authorized && n.ipv4 !== null && (n.expiresAt === null || n.expiresAt > now);
}

/**
 * The policy engine's view of the tailnet: active nodes keyed by id (the
 * `hostname` is the DNS name), users keyed by email. Untagged nodes whose
 * owner is gone are left out, as the engine requires an owner.
 */
export function topologyInput(
  rows: readonly Models.Node[],
  users: readonly Models.User[],
  now: Date,
): { input: TopologyInput; active: Models.Node[] } {
  const byUser = new Map(users.map((u) => [u.id, u]));
  const active = rows.filter(
    (n) => isActive(n, now) && (jsonList(n.tags).length > 0 || (n.userId !== null && byUser.has(n.userId))),
  );
  const input: TopologyInput = {
    users: users.map((u) => ({
      id: u.id,
      // Emails are unique; names need not be, and the topology wants a unique key.
      name: u.email,
      email: u.email,
      role: u.role === "admin" || u.role === "auditor" ? u.role : "member",
      groups: jsonList(u.groups),
    })),
    nodes: Object.fromEntries(
      active.map((n) => {
        const tags = jsonList(n.tags);
        return [
          n.id,
          {
            hostname: n.name,
            tags,
            ipv4: n.ipv4 ?? undefined,
            ipv6: n.ipv6 ?? undefined,
            user: tags.length > 0 ? null : byUser.get(n.userId!)!.email,
            routable_ips: jsonList(n.advertisedRoutes),
            approved_routes: jsonList(n.approvedRoutes),
          },
        ];
      }),
    ),
  };
  return { input, active };
}

/**
 * JSON of a map part, computed once per object: peers, filters and self
 * nodes are shared by every stream of a snapshot and never mutated, so
 * streams comparing maps stringify each only once.
 */
const jsonCache = new WeakMap<object, string>();
export function jsonOf(o: object): string {
  let j = jsonCache.get(o);
  if (j === undefined) {
    j = JSON.stringify(o);
    jsonCache.set(o, j);
  }
  return j;
}
export const jsonOfPeer: (p: Peer) => string = jsonOf;

/**
 * JSON of a node's packet filter, the same text as JSON.stringify, assembled
 * with the cached JSON of each rule's SrcIPs: the compiler shares one SrcIPs
 * list among every node a rule reaches, and those lists are the bulk of a
 * filter, so a policy change stringifies each list once instead of once per
 * node. Primes jsonOf's cache for the filter.
 */
export function jsonOfFilter(rules: readonly FilterRule[]): string {
  let j = jsonCache.get(rules);
  if (j !== undefined) return j;
  const out: string[] = [];
  for (const r of rules) {
    const parts: string[] = [];
    for (const [k, v] of Object.entries(r)) {
      if (v === undefined) continue;
      parts.push(`${JSON.stringify(k)}:${k === "SrcIPs" ? jsonOf(v as object) : JSON.stringify(v)}`);
    }
    out.push(`{${parts.join(",")}}`);
  }
  j = `[${out.join(",")}]`;
  jsonCache.set(rules, j);
  return j;
}

interface Parts {
  /** Pending nodes (isPending) by id, outside the topology. */
  pending: Map<string, { row: Models.Node; self?: SelfNode }>;
  topology: Topology;
  compiler: FilterCompiler;
  entries: Map<string, Entry>;
  /** Entries by name (the peer order); `rank[index]` is a node's position here. */
  order: Entry[];
  /** Computed on first use and shared with patched copies (they depend only on topology and policy). */
  shared: {
    ssh: SshPolicies | null;
    filters: (FilterRule[] | undefined)[];
    visibility: Visibility | null;
    rank: Int32Array;
    /** Scratch marks for peersOf's deduplication. */
    stamp?: { marks: Int32Array; next: number };
  };
}

const NO_RULES: FilterRule[] = [];
const NO_SSH: { rules: SSHRule[] } = { rules: [] };

export class TailnetSnapshot {
  readonly topology: Topology;
  private readonly compiler: FilterCompiler;
  private readonly entries: Map<string, Entry>;
  private readonly order: Entry[];
  private readonly shared: Parts["shared"];
  private readonly pending: Parts["pending"];

  private constructor(
    parts: Parts,
    readonly policy: ActivePolicy,
    readonly dnsDomain: string,
  ) {
    this.topology = parts.topology;
    this.compiler = parts.compiler;
    this.entries = parts.entries;
    this.order = parts.order;
    this.shared = parts.shared;
    this.pending = parts.pending;
  }

  /**
   * Build from the database's rows. Peers equal to those of `previous` are
   * taken from it, so streams compare unchanged peers by identity.
   */
  static build(
    rows: readonly Models.Node[],
    users: readonly Models.User[],
    policy: ActivePolicy,
    dnsDomain: string,
    now = new Date(),
    previous?: TailnetSnapshot,
  ): TailnetSnapshot {
    const { input, active } = topologyInput(rows, users, now);
    const topology = parseTopology(input, "tailnet");
    const compiler = new FilterCompiler(policy.policy, topology);
    const rowById = new Map(active.map((n) => [n.id, n]));
    const entries = new Map<string, Entry>();
    for (const info of topology.nodes) {
      const row = rowById.get(info.name)!;
      const routes = info.routes.map(formatPrefix);
      if (info.exit4) routes.push("0.0.0.0/0");
      if (info.exit6) routes.push("::/0");
      let peer = peerOf(row, dnsDomain, routes);
      const old = previous?.entries.get(row.id)?.peer;
      if (old && jsonOfPeer(old) === jsonOfPeer(peer)) peer = old;
      entries.set(row.id, { row, info, routes, peer });
    }
    // Peers are listed by name, the order nodes and applyDelta() keep.
    const order = [...entries.values()].sort((a, b) =>
      a.row.name < b.row.name ? -1 : a.row.name > b.row.name ? 1 : 0,
    );
    const rank = new Int32Array(topology.nodes.length);
    order.forEach((e, k) => (rank[e.info.index] = k));
    const shared = { ssh: null, filters: [], visibility: null, rank };
    const byUser = new Set(users.map((u) => u.id));
    const pending = new Map<string, { row: Models.Node }>();
    for (const n of rows) {
      if (isPending(n, now) && (jsonList(n.tags).length > 0 || (n.userId !== null && byUser.has(n.userId)))) {
        pending.set(n.id, { row: n });
      }
    }
    return new TailnetSnapshot({ pending, topology, compiler, entries, order, shared }, policy, dnsDomain);
  }

  /**
   * A copy with new rows for some nodes whose peer-visible attributes
   * (endpoints, online…) changed; topology, filters and visibility are shared.
   * Rows of nodes not in the snapshot are ignored.
   */
  withRows(rows: readonly Models.Node[]): TailnetSnapshot {
    const patched = new Map<string, Entry>();
    let pending = this.pending;
    for (const row of rows) {
      if (this.pending.has(row.id)) {
        if (pending === this.pending) pending = new Map(this.pending);
        pending.set(row.id, { row });
        continue;
      }
      const e = this.entries.get(row.id);
      if (!e) continue;
      patched.set(row.id, {
        row,
        info: e.info,
        routes: e.routes,
        peer: peerOf(row, this.dnsDomain, e.routes),
      });
    }
    if (patched.size === 0 && pending === this.pending) return this;
    const entries = new Map(this.entries);
    for (const [id, e] of patched) entries.set(id, e);
    const order = this.order.map((e) => patched.get(e.row.id) ?? e);
    return new TailnetSnapshot(
      { pending, topology: this.topology, compiler: this.compiler, entries, order, shared: this.shared },
      this.policy,
      this.dnsDomain,
    );
  }

  /**
   * The earliest key expiry among the nodes taking part (or pending), and
   * which nodes expire then: at that instant their maps must end and their
   * peers lose them, without any write to announce it.
   */
  nextExpiry(): { at: number; ids: string[] } | null {
    let at = Infinity;
    let ids: string[] = [];
    const rows = [...this.entries.values(), ...this.pending.values()].map((e) => e.row);
    for (const r of rows) {
      const t = r.expiresAt?.getTime();
      if (t === undefined) continue;
      if (t < at) [at, ids] = [t, [r.id]];
      else if (t === at) ids.push(r.id);
    }
    return at === Infinity ? null : { at, ids };
  }

  get size(): number {
    return this.entries.size;
  }

  /** A node as its peers see it (undefined when it takes no part in the tailnet). */
  peer(nodeId: string): Peer | undefined {
    return this.entries.get(nodeId)?.peer;
  }

  /** A node as it sees itself (pending nodes included). */
  selfNode(nodeId: string): SelfNode | undefined {
    const e = this.entries.get(nodeId);
    if (e) return this.selfOf(e);
    const p = this.pending.get(nodeId);
    return p && (p.self ??= selfOf(p.row, this.dnsDomain, []));
  }

  /** True when both nodes take part and policy lets either reach the other (they are each other's peers). */
  sees(nodeId: string, otherId: string): boolean {
    const e = this.entries.get(nodeId);
    if (!e || nodeId === otherId || !this.entries.has(otherId)) return false;
    return this.peersOf(e).some((p) => p.id === otherId);
  }

  private selfOf(e: Entry): SelfNode {
    return (e.self ??= selfOf(e.row, this.dnsDomain, e.routes));
  }
  private filterOf(e: Entry): FilterRule[] {
    const i = e.info.index;
    let f = this.shared.filters[i];
    if (!f) {
      f = this.shared.filters[i] = this.compiler.filterFor(e.info) as FilterRule[];
      jsonOfFilter(f);
    }
    return f;
  }

  /** Who sees whom, for the whole tailnet at once (every filter is needed for the reverse direction). */
  private visibility(): Visibility {
    if (this.shared.visibility) return this.shared.visibility;
    const index = new AddrIndex(this.topology);
    const n = this.topology.nodes.length;
    const reach: (Int32Array | null)[] = new Array(n);
    const reverseCount = new Int32Array(n);
    const acceptAll: number[] = [];
    // Nodes a source list covers, once per list: the compiler shares a rule's
    // SrcIPs among every node the rule reaches. null: "*".
    const coverage = new Map<readonly string[], readonly number[] | null>();
    const cover = (srcs: readonly string[]) => {
      let c = coverage.get(srcs);
      if (c === undefined) {
        if (srcs.includes("*")) c = null;
        else {
          const set = new Set<number>();
          for (const t of srcs) for (const j of index.covering(t)) set.add(j);
          c = [...set];
        }
        coverage.set(srcs, c);
      }
      return c;
    };
    for (const e of this.order) {
      const i = e.info.index;
      const lists: (readonly number[])[] = [];
      let all = false;
      for (const r of this.filterOf(e)) {
        if (!r.DstPorts?.length) continue;
        const c = cover(r.SrcIPs);
        if (c === null) {
          all = true;
          break;
        }
        if (!lists.includes(c)) lists.push(c);
      }
      if (all) {
        reach[i] = null;
        acceptAll.push(i);
        continue;
      }
      let covered: number[];
      if (lists.length === 1) covered = lists[0]!.filter((j) => j !== i);
      else {
        const set = new Set<number>();
        for (const l of lists) for (const j of l) if (j !== i) set.add(j);
        covered = [...set];
      }
      const arr = new Int32Array(covered);
      reach[i] = arr;
      for (let k = 0; k < arr.length; k++) reverseCount[arr[k]!]!++;
    }
    // The reverse direction, in flat arrays: who reaches each node.
    const reverse: Int32Array[] = new Array(n);
    for (let j = 0; j < n; j++) reverse[j] = new Int32Array(reverseCount[j]!);
    reverseCount.fill(0);
    for (let i = 0; i < n; i++) {
      const own = reach[i];
      if (!own) continue;
      for (let k = 0; k < own.length; k++) {
        const j = own[k]!;
        reverse[j]![reverseCount[j]!++] = i;
      }
    }
    this.shared.visibility = { reach, reverse, acceptAll };
    return this.shared.visibility;
  }

  /** Peers of `e`, in name order: the nodes policy lets it reach or be reached by. */
  private peersOf(e: Entry): Peer[] {
    const v = this.visibility();
    const i = e.info.index;
    const own = v.reach[i];
    if (own === null) return this.order.filter((p) => p !== e).map((p) => p.peer);
    // Ranks of the peers, deduplicated with a per-call stamp instead of a Set,
    // sorted natively (typed arrays sort numerically without a comparator).
    const rank = this.shared.rank;
    const stamp = (this.shared.stamp ??= { marks: new Int32Array(rank.length), next: 0 });
    if (stamp.next === 0x7fffffff) {
      stamp.marks.fill(0);
      stamp.next = 0;
    }
    const mark = ++stamp.next;
    const reverse = v.reverse[i]!;
    const out = new Int32Array(own!.length + reverse.length + v.acceptAll.length);
    let len = 0;
    const add = (j: number) => {
      if (stamp.marks[j] !== mark) {
        stamp.marks[j] = mark;
        out[len++] = rank[j]!;
      }
    };
    for (let k = 0; k < own!.length; k++) add(own![k]!);
    for (let k = 0; k < reverse.length; k++) add(reverse[k]!);
    for (const j of v.acceptAll) if (j !== i) add(j);
    const sorted = out.subarray(0, len).sort();
    const peers: Peer[] = new Array(len);
    for (let k = 0; k < len; k++) peers[k] = this.order[sorted[k]!]!.peer;
    return peers;
  }

  private sshOf(e: Entry): SSHRule[] {
    this.shared.ssh ??= compileSsh(this.policy.policy, this.topology);
    return this.shared.ssh[e.info.name] ?? [];
  }

  /**
   * The map of one node, or null when it takes no part in the tailnet
   * (unknown, expired). A node awaiting approval gets itself, no peers and
   * an empty filter.
   */
  mapFor(nodeId: string, relayMap: RelayMap, dns: DnsConfig): NodeMap | null {
    const e = this.entries.get(nodeId);
    if (!e) {
      const self = this.selfNode(nodeId);
      if (!self) return null;
      return {
        type: "full",
        node: self,
        peers: [],
        relayMap,
        dns,
        packetFilter: NO_RULES,
        sshPolicy: NO_SSH,
        policyVersion: this.policy.version,
      };
    }
    return {
      type: "full",
      node: this.selfOf(e),
      peers: this.peersOf(e),
      relayMap,
      dns,
      packetFilter: this.filterOf(e),
      sshPolicy: (e.ssh ??= { rules: this.sshOf(e) }),
      policyVersion: this.policy.version,
    };
  }
}
