// One consistent view of the tailnet — nodes, users and the policy in force —
// from which every node's map is cut. Built once per change (NetmapService)
// and shared by all open streams: the topology is parsed and filters
// compiled once, each node's filter and peer list computed on first use.
import type { Database, Models } from "@trellis/db";
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
} from "@trellis/policy";
import type { FilterRule as EngineFilterRule, SSHRule as EngineSSHRule } from "@trellis/policy";
import {
  formatPrefix,
  isTailnetAddr,
  lastAddr,
  parseAddr,
  parsePrefix,
  prefixesOverlap,
  TAILNET_SOURCES,
  TAILNET_V4,
  TAILNET_V6,
} from "@trellis/proto/ip";
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
  /** The node as it sees itself, made on first use (it depends on the row, routes and DNS domain only). */
  self?: SelfNode;
}

/**
 * Who sees whom, by topology node index; computed once per topology and
 * policy and shared by patched snapshots. Node i's filter accepts packets
 * from `reachData[reachStart[i] .. reachStart[i + 1])`, unless
 * `acceptsAll[i]` (a source covering every node: `*`, which is the
 * tailnet's address space, or `autogroup:danger-all`). A node's peers are those it
 * accepts packets from plus those that accept packets from it. Flat arrays,
 * not one array per node: at 10,000 nodes, 20,000 small typed arrays cost
 * more to allocate than the whole computation.
 */
interface Visibility {
  reachStart: Int32Array;
  reachData: Int32Array;
  acceptsAll: Uint8Array;
  /** Who reaches each node (the transpose of reach), laid out the same way. */
  reverseStart: Int32Array;
  reverseData: Int32Array;
  /** Nodes accepting packets from everyone: everyone's peers. */
  acceptAll: Int32Array;
}

/** The same range of two flat arrays (node `i`'s part of each). */
function sameRange(aStart: Int32Array, aData: Int32Array, bStart: Int32Array, bData: Int32Array, i: number) {
  const a0 = aStart[i]!;
  const b0 = bStart[i]!;
  const len = aStart[i + 1]! - a0;
  if (len !== bStart[i + 1]! - b0) return false;
  for (let k = 0; k < len; k++) if (aData[a0 + k] !== bData[b0 + k]) return false;
  return true;
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
  /** Entries the cache may hold beyond the nodes' own addresses (source texts of past policies). */
  private room: number;
  /** Every node has an address in the tailnet's address space, so a source list holding that space covers everyone. */
  private readonly allInTailnet: boolean;

  private static readonly byTopology = new WeakMap<Topology, AddrIndex>();

  /**
   * The index of a topology, made once: a new policy over the same nodes
   * (the snapshot keeps the topology then) reuses it and its cache.
   */
  static of(topology: Topology): AddrIndex {
    let index = AddrIndex.byTopology.get(topology);
    if (!index) AddrIndex.byTopology.set(topology, (index = new AddrIndex(topology)));
    return index;
  }

  private constructor(topology: Topology) {
    this.room = 4 * topology.nodes.length + 1024;
    this.allInTailnet = topology.nodes.every((n) => n.addrs.some(isTailnetAddr));
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

  /**
   * Whether a source list covers every node without looking at each: `*`
   * compiles to the tailnet's address space (plus routes), which holds an
   * address of every node; listing 10,000 nodes per accepting node instead
   * would make visibility quadratic.
   */
  coversAll(srcs: readonly string[]): boolean {
    return srcs.includes("*") || (this.allInTailnet && TAILNET_SOURCES.every((t) => srcs.includes(t.text)));
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
    if (this.room > 0) {
      this.room--;
      this.cache.set(text, out);
    }
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
 * The tailnet as the policy engine sees it, read from the database now: the
 * topology a snapshot holds, without building one. For callers with no
 * NetmapService (the admin CLI's policy checks, tests).
 */
export async function readTopology(db: Database, now = new Date()): Promise<Topology> {
  const [rows, users] = await Promise.all([db.prisma.node.findMany(), db.prisma.user.findMany()]);
  return parseTopology(topologyInput(rows, users, now).input, "tailnet");
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
 * Equal packet filters, rule by rule (what their JSON would say, without
 * making it): a stream compares its node's filter on every policy change,
 * and most nodes' filters are new objects whether or not they changed.
 */
export function sameFilter(a: readonly FilterRule[], b: readonly FilterRule[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  // Ports and protocols first: they are short and what a policy change usually changes.
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    const dx = x.DstPorts;
    const dy = y.DstPorts;
    if (dx !== dy) {
      if (!dx || !dy || dx.length !== dy.length) return false;
      for (let k = 0; k < dx.length; k++) {
        const p = dx[k]!;
        const q = dy[k]!;
        if (p.IP !== q.IP || p.Ports.First !== q.Ports.First || p.Ports.Last !== q.Ports.Last) return false;
      }
    }
    const px = x.IPProto;
    const py = y.IPProto;
    if (px !== py) {
      if (!px || !py || px.length !== py.length) return false;
      for (let k = 0; k < px.length; k++) if (px[k] !== py[k]) return false;
    }
    if (x.SrcIPs.length !== y.SrcIPs.length) return false;
  }
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (!sameStrings(x.SrcIPs, y.SrcIPs)) return false;
    // Capability grants are rare and small: their JSON settles it.
    if ((x.CapGrant || y.CapGrant) && JSON.stringify(x.CapGrant) !== JSON.stringify(y.CapGrant)) return false;
  }
  return true;
}

interface Parts {
  /** Every node row the snapshot was made from (active or not), for a rebuild under a new policy. */
  rows: readonly Models.Node[];
  users: readonly Models.User[];
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
    /** Each node's `sshPolicy`, by topology index. */
    sshMaps: ({ rules: SSHRule[] } | undefined)[];
    filters: (FilterRule[] | undefined)[];
    visibility: Visibility | null;
    rank: Int32Array;
    /** Scratch space of peersOf: marks for deduplication, and the ranks gathered. */
    stamp?: { marks: Int32Array; next: number; scratch: Int32Array };
  };
  /**
   * After a rebuild that kept every node as it was (a policy change): the
   * previous snapshot's shared parts and peer lists, so a node whose
   * visibility did not change keeps its very peer list. Dropped once this
   * snapshot's visibility is known.
   */
  prior?: { shared: Parts["shared"]; peerLists: (Peer[] | undefined)[] };
}

/**
 * The same row, field by field: a rebuild reuses what it made from an
 * unchanged row (the peer, the self node) instead of making it again.
 */
export function sameRow(a: Models.Node, b: Models.Node): boolean {
  if (a === b) return true;
  for (const k in a) {
    const x = a[k as keyof Models.Node];
    const y = b[k as keyof Models.Node];
    if (x === y) continue;
    if (x instanceof Date && y instanceof Date && x.getTime() === y.getTime()) continue;
    return false;
  }
  return true;
}

/** The same users, in the same order, as the topology sees them (id, email, role, groups). */
function sameUsers(a: readonly Models.User[], b: readonly Models.User[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) {
    const x = a[k]!;
    const y = b[k]!;
    if (x.id !== y.id || x.email !== y.email || x.role !== y.role || x.groups !== y.groups) return false;
  }
  return true;
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false;
  return true;
}

/** Byte-equal typed arrays (a native comparison). */
function sameBytes(a: Int32Array | Uint8Array, b: Int32Array | Uint8Array): boolean {
  return (
    a.byteLength === b.byteLength &&
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ) === 0
  );
}

function sameInts(a: Int32Array | null, b: Int32Array | null): boolean {
  if (a === b) return true;
  if (a === null || b === null || a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false;
  return true;
}

const NO_RULES: FilterRule[] = [];
/** Longest peer list a patch copies to replace a peer in (longer ones are made again on use). */
export const PATCHED_LIST_MAX = 1024;
const NO_SSH: { rules: SSHRule[] } = { rules: [] };

export class TailnetSnapshot {
  readonly topology: Topology;
  private readonly compiler: FilterCompiler;
  private readonly entries: Map<string, Entry>;
  private readonly order: Entry[];
  private readonly shared: Parts["shared"];
  private readonly pending: Parts["pending"];
  private readonly users: readonly Models.User[];
  /** Every node row (active or not) this snapshot was made from. */
  readonly rows: readonly Models.Node[];
  /** Peer lists made so far, by topology index (this snapshot's peers only). */
  private peerLists: (Peer[] | undefined)[];
  /**
   * Who policy alone makes each node's peers, by topology index; with plain
   * WireGuard peers in the tailnet, peerLists add to them (onlyReachable).
   */
  private rawLists: (Peer[] | undefined)[];
  private prior: Parts["prior"];

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
    this.users = parts.users;
    this.rows = parts.rows;
    this.prior = parts.prior;
    this.peerLists = new Array(parts.topology.nodes.length).fill(undefined);
    this.rawLists = new Array(parts.topology.nodes.length).fill(undefined);
  }

  private static newShared(rank: Int32Array, stamp?: Parts["shared"]["stamp"]): Parts["shared"] {
    // Filled with undefined, not left empty: arrays filled at random indices
    // would fall back to slow dictionary storage.
    const n = rank.length;
    return {
      ssh: null,
      sshMaps: new Array(n).fill(undefined),
      filters: new Array(n).fill(undefined),
      visibility: null,
      rank,
      stamp,
    };
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
    const byUser = new Set(users.map((u) => u.id));
    const pending = new Map<string, { row: Models.Node }>();
    for (const n of rows) {
      if (isPending(n, now) && (jsonList(n.tags).length > 0 || (n.userId !== null && byUser.has(n.userId)))) {
        pending.set(n.id, { row: n });
      }
    }
    // A change that left every node and user as it was (a new policy, new
    // settings) keeps the topology and every node's parts: only what the
    // policy decides (filters, visibility, SSH) is made again.
    const prev = previous?.dnsDomain === dnsDomain ? previous : undefined;
    if (prev && sameUsers(prev.users, users)) {
      const kept = TailnetSnapshot.unchanged(prev, rows, byUser, now);
      if (kept) {
        const compiler = new FilterCompiler(policy.policy, prev.topology);
        return new TailnetSnapshot(
          {
            rows,
            users,
            pending,
            topology: prev.topology,
            compiler,
            entries: prev.entries,
            order: prev.order,
            shared: TailnetSnapshot.newShared(prev.shared.rank, prev.shared.stamp),
            prior: { shared: prev.shared, peerLists: prev.peerLists },
          },
          policy,
          dnsDomain,
        );
      }
    }
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
      const old = prev?.entries.get(row.id);
      if (old && sameRow(old.row, row) && sameStrings(old.routes, routes)) {
        // Unchanged: its peer and self node are reused as they are (streams compare them by identity).
        entries.set(row.id, { row: old.row, info, routes: old.routes, peer: old.peer, self: old.self });
        continue;
      }
      let peer = peerOf(row, dnsDomain, routes);
      if (old && jsonOfPeer(old.peer) === jsonOfPeer(peer)) peer = old.peer;
      entries.set(row.id, { row, info, routes, peer });
    }
    // Peers are listed by name, the order nodes and applyDelta() keep.
    const order = [...entries.values()].sort((a, b) =>
      a.row.name < b.row.name ? -1 : a.row.name > b.row.name ? 1 : 0,
    );
    const rank = new Int32Array(topology.nodes.length);
    order.forEach((e, k) => (rank[e.info.index] = k));
    return new TailnetSnapshot(
      { rows, users, pending, topology, compiler, entries, order, shared: TailnetSnapshot.newShared(rank) },
      policy,
      dnsDomain,
    );
  }

  /**
   * True when the nodes taking part now are exactly those of `prev`, with
   * the same rows (the users having been found the same): then the topology
   * and every entry of `prev` still hold.
   */
  private static unchanged(
    prev: TailnetSnapshot,
    rows: readonly Models.Node[],
    byUser: ReadonlySet<string>,
    now: Date,
  ): boolean {
    let count = 0;
    for (const n of rows) {
      if (!isActive(n, now)) continue;
      const e = prev.entries.get(n.id);
      if (!e) {
        // Active but not in the topology: fine only if the topology leaves it out too (no owner).
        if (jsonList(n.tags).length > 0 || (n.userId !== null && byUser.has(n.userId))) return false;
        continue;
      }
      if (!sameRow(e.row, n)) return false;
      count++;
    }
    return count === prev.entries.size;
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
    const byId = new Map(rows.map((r) => [r.id, r]));
    const next = new TailnetSnapshot(
      {
        rows: this.rows.map((r) => byId.get(r.id) ?? r),
        users: this.users,
        pending,
        topology: this.topology,
        compiler: this.compiler,
        entries,
        order,
        shared: this.shared,
      },
      this.policy,
      this.dnsDomain,
    );
    this.keepPeerLists(next, [...patched.values()]);
    return next;
  }

  /**
   * A patched copy keeps the peer lists made so far (who sees whom is
   * unchanged): a list naming a patched node gets a copy with its new peer
   * object in the same place, unless the list is long (then it is dropped,
   * to be made again on use: patching it would cost as much).
   */
  private keepPeerLists(next: TailnetSnapshot, patched: Entry[]): void {
    const v = this.shared.visibility;
    if (!v) return;
    const lists = this.peerLists.slice();
    const copied = new Set<number>();
    const replace = (j: number, e: Entry) => {
      let list = lists[j];
      if (!list) return;
      if (list.length > PATCHED_LIST_MAX) {
        lists[j] = undefined;
        return;
      }
      const k = list.findIndex((p) => p.id === e.row.id);
      if (k < 0) return;
      if (!copied.has(j)) {
        list = lists[j] = list.slice();
        copied.add(j);
      }
      list[k] = e.peer;
    };
    const inRanges = (p: number, e: Entry) => {
      for (let k = v.reachStart[p]!; k < v.reachStart[p + 1]!; k++) replace(v.reachData[k]!, e);
      for (let k = v.reverseStart[p]!; k < v.reverseStart[p + 1]!; k++) replace(v.reverseData[k]!, e);
    };
    // Plain peers list nodes beyond policy's pairs (see onlyReachable): a
    // gateway lists its plain peers' peers, and their peers list it.
    const plain = this.plain();
    const gateways = [...plain.keys()].map((id) => this.entries.get(id)!.info.index);
    for (const e of patched) {
      const p = e.info.index;
      if (v.acceptsAll[p]) return; // everyone lists it: no list is kept
      inRanges(p, e);
      for (const g of gateways) replace(g, e);
      for (const q of plain.get(e.row.id) ?? []) {
        if (v.acceptsAll[q.info.index]) return;
        inRanges(q.info.index, e);
      }
    }
    for (let k = 0; k < v.acceptAll.length; k++) {
      const j = v.acceptAll[k]!;
      for (const e of patched) replace(j, e);
    }
    next.peerLists = lists;
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
    }
    return f;
  }

  /** Who sees whom, for the whole tailnet at once (every filter is needed for the reverse direction). */
  private visibility(): Visibility {
    if (this.shared.visibility) return this.shared.visibility;
    const index = AddrIndex.of(this.topology);
    const n = this.topology.nodes.length;
    // Nodes a source list covers, once per list: the compiler shares a rule's
    // SrcIPs among every node the rule reaches. null: everyone.
    const coverage = new Map<readonly string[], readonly number[] | null>();
    const cover = (srcs: readonly string[]) => {
      let c = coverage.get(srcs);
      if (c === undefined) {
        if (index.coversAll(srcs)) c = null;
        else {
          const set = new Set<number>();
          for (const t of srcs) for (const j of index.covering(t)) set.add(j);
          c = [...set];
        }
        coverage.set(srcs, c);
      }
      return c;
    };
    // First pass: the (shared) lists each node accepts from, and the counts.
    const accepts: (readonly number[] | null)[] = new Array(n).fill(null);
    const acceptsAll = new Uint8Array(n);
    const reachStart = new Int32Array(n + 1);
    const reverseCount = new Int32Array(n);
    const all: number[] = [];
    for (const e of this.order) {
      const i = e.info.index;
      let list: readonly number[] | null = null;
      let merged: Set<number> | null = null;
      let star = false;
      for (const r of this.filterOf(e)) {
        if (!r.DstPorts?.length) continue;
        const c = cover(r.SrcIPs);
        if (c === null) {
          star = true;
          break;
        }
        if (list === null || list === c) list = c;
        else {
          merged ??= new Set(list);
          for (const j of c) merged.add(j);
        }
      }
      if (star) {
        acceptsAll[i] = 1;
        all.push(i);
        continue;
      }
      if (merged) list = [...merged];
      accepts[i] = list;
      let count = 0;
      if (list) for (const j of list) if (j !== i) count++;
      reachStart[i + 1] = count;
    }
    for (let i = 0; i < n; i++) reachStart[i + 1]! += reachStart[i]!;
    const reachData = new Int32Array(reachStart[n]!);
    for (let i = 0; i < n; i++) {
      const list = accepts[i];
      if (!list) continue;
      let at = reachStart[i]!;
      for (const j of list) {
        if (j === i) continue;
        reachData[at++] = j;
        reverseCount[j]!++;
      }
    }
    // The reverse direction: who reaches each node.
    const reverseStart = new Int32Array(n + 1);
    for (let j = 0; j < n; j++) reverseStart[j + 1] = reverseStart[j]! + reverseCount[j]!;
    const reverseData = new Int32Array(reverseStart[n]!);
    reverseCount.fill(0);
    for (let i = 0; i < n; i++) {
      for (let k = reachStart[i]!; k < reachStart[i + 1]!; k++) {
        const j = reachData[k]!;
        reverseData[reverseStart[j]! + reverseCount[j]!++] = i;
      }
    }
    const v: Visibility = {
      reachStart,
      reachData,
      acceptsAll,
      reverseStart,
      reverseData,
      acceptAll: new Int32Array(all),
    };
    this.shared.visibility = v;
    this.comparePrior(v);
    return v;
  }

  /**
   * After a policy-only rebuild: nodes that see the same peers as before
   * (same reach both ways, same accept-all nodes) keep the prior snapshot's
   * very peer list. The prior parts are dropped here, so snapshots never chain.
   */
  private comparePrior(v: Visibility): void {
    const prior = this.prior;
    this.prior = undefined;
    const old = prior?.shared.visibility;
    if (!prior || !old || !sameInts(old.acceptAll, v.acceptAll)) return;
    // Usually nobody's peers changed (a new policy about ports): one native
    // comparison of the whole layout settles it for every node at once (the
    // reverse direction is the transpose of reach, so equal with it).
    if (
      sameBytes(old.acceptsAll, v.acceptsAll) &&
      sameBytes(old.reachStart, v.reachStart) &&
      sameBytes(old.reachData, v.reachData)
    ) {
      for (let i = 0; i < v.acceptsAll.length; i++) {
        const list = prior.peerLists[i];
        if (list) this.peerLists[i] = list;
      }
      return;
    }
    // A gateway's list also depends on who its plain peers see: made again.
    const gateways = new Set<number>();
    for (const id of this.plain().keys()) gateways.add(this.entries.get(id)!.info.index);
    for (let i = 0; i < v.acceptsAll.length; i++) {
      const list = prior.peerLists[i];
      if (
        list &&
        !gateways.has(i) &&
        old.acceptsAll[i] === v.acceptsAll[i] &&
        sameRange(old.reachStart, old.reachData, v.reachStart, v.reachData, i) &&
        sameRange(old.reverseStart, old.reverseData, v.reverseStart, v.reverseData, i)
      ) {
        this.peerLists[i] = list;
      }
    }
  }

  /** Plain WireGuard peers by the id of their gateway, for gateways taking part (computed once per snapshot). */
  private plainByGateway?: Map<string, Entry[]>;
  /** Whether any node taking part is a plain WireGuard peer (with a gateway taking part or not). */
  private anyPlain = false;
  /** Ids of the plain WireGuard peers whose gateway takes part (those anyone may list). */
  private readonly plainServed = new Set<string>();

  private plain(): Map<string, Entry[]> {
    if (this.plainByGateway) return this.plainByGateway;
    const m = new Map<string, Entry[]>();
    for (const e of this.order) {
      if (!e.row.wireguardOnly) continue;
      this.anyPlain = true;
      const gw = e.row.gatewayId;
      if (!gw) continue;
      const g = this.entries.get(gw);
      if (!g || g.row.wireguardOnly) continue;
      let list = m.get(gw);
      if (!list) m.set(gw, (list = []));
      list.push(e);
      this.plainServed.add(e.row.id);
    }
    return (this.plainByGateway = m);
  }

  /**
   * A plain WireGuard peer speaks neither disco nor DERP and has no peers
   * itself: its gateway has it as a WireGuard peer and forwards for it. So
   * a node whose policy peers include a plain peer also gets that peer's
   * gateway (it routes the plain peer's addresses there), and a gateway gets
   * its plain peers that policy gives anyone, and their policy peers (it
   * forwards their packets to them). A plain peer without a gateway taking
   * part is nobody's peer.
   */
  private onlyReachable(e: Entry, raw: Peer[]): Peer[] {
    const plain = this.plain();
    if (!this.anyPlain) return raw;
    if (e.row.wireguardOnly) return [];
    const mine = plain.get(e.row.id);
    if (!mine && this.coversPlain(raw)) return raw;
    const picked = new Set<Entry>();
    const consider = (p: Entry) => {
      if (p === e) return;
      if (p.row.wireguardOnly) {
        const gw = p.row.gatewayId!;
        if (!this.plainServed.has(p.row.id)) return;
        if (gw !== e.row.id) picked.add(this.entries.get(gw)!);
      }
      picked.add(p);
    };
    for (const p of raw) consider(this.entries.get(p.id)!);
    for (const p of mine ?? []) {
      const theirs = this.rawPeersOf(p);
      if (theirs.length === 0) continue;
      consider(p);
      for (const q of theirs) consider(this.entries.get(q.id)!);
    }
    const rank = this.shared.rank;
    return [...picked].sort((a, b) => rank[a.info.index]! - rank[b.info.index]!).map((x) => x.peer);
  }

  /**
   * Whether a policy list needs nothing added or taken for plain peers: each
   * plain peer in it has a gateway taking part, and that gateway is in it
   * too (as everyone is under an open policy: then the list is kept as it
   * is, without making a copy per node).
   */
  private coversPlain(raw: Peer[]): boolean {
    this.plain(); // fills plainServed
    const rank = this.shared.rank;
    const rankOf = (id: string) => rank[this.entries.get(id)!.info.index]!;
    for (const p of raw) {
      if (!p.isWireGuardOnly) continue;
      const gw = p.gateway;
      if (!gw || !this.plainServed.has(p.id)) return false;
      // The list is in rank order: a binary search finds the gateway.
      const want = rankOf(gw);
      let lo = 0;
      let hi = raw.length;
      while (lo < hi) {
        const m = (lo + hi) >> 1;
        if (rankOf(raw[m]!.id) < want) lo = m + 1;
        else hi = m;
      }
      if (lo === raw.length || raw[lo]!.id !== gw) return false;
    }
    return true;
  }

  /** Peers of `e`, in name order: the nodes policy lets it reach or be reached by, and what plain peers add (made once per snapshot). */
  private peersOf(e: Entry): Peer[] {
    const i = e.info.index;
    const known = this.peerLists[i];
    if (known) return known;
    return (this.peerLists[i] = this.onlyReachable(e, this.rawPeersOf(e)));
  }

  /** The nodes policy lets `e` reach or be reached by, in name order. */
  private rawPeersOf(e: Entry): Peer[] {
    const v = this.visibility();
    const i = e.info.index;
    const known = this.rawLists[i];
    if (known) return known;
    if (v.acceptsAll[i]) {
      return (this.rawLists[i] = this.order.filter((p) => p !== e).map((p) => p.peer));
    }
    // Ranks of the peers, deduplicated with a per-call stamp instead of a Set,
    // gathered in a scratch array and sorted natively (typed arrays sort
    // numerically without a comparator).
    const rank = this.shared.rank;
    const stamp = (this.shared.stamp ??= {
      marks: new Int32Array(rank.length),
      next: 0,
      scratch: new Int32Array(rank.length),
    });
    if (stamp.next === 0x7fffffff) {
      stamp.marks.fill(0);
      stamp.next = 0;
    }
    const mark = ++stamp.next;
    const { marks, scratch } = stamp;
    let len = 0;
    const add = (j: number) => {
      if (marks[j] !== mark) {
        marks[j] = mark;
        scratch[len++] = rank[j]!;
      }
    };
    for (let k = v.reachStart[i]!; k < v.reachStart[i + 1]!; k++) add(v.reachData[k]!);
    for (let k = v.reverseStart[i]!; k < v.reverseStart[i + 1]!; k++) add(v.reverseData[k]!);
    for (let k = 0; k < v.acceptAll.length; k++) if (v.acceptAll[k] !== i) add(v.acceptAll[k]!);
    const sorted = scratch.subarray(0, len).sort();
    const peers: Peer[] = new Array(len);
    for (let k = 0; k < len; k++) peers[k] = this.order[sorted[k]!]!.peer;
    return (this.rawLists[i] = peers);
  }

  /** Filters of gateways with plain peers, by node id (made once per snapshot). */
  private readonly gatewayFilters = new Map<string, FilterRule[]>();

  /**
   * A node's packet filter; a gateway's also filters for its plain peers,
   * which have no filter of their own: it takes their rules (what may reach
   * them), and lets their packets through to the nodes whose rules accept
   * them (narrowed to the plain peer's addresses; those nodes judge again).
   */
  private gatewayFilterOf(e: Entry): FilterRule[] {
    const mine = this.plain().get(e.row.id);
    if (!mine) return this.filterOf(e);
    const known = this.gatewayFilters.get(e.row.id);
    if (known) return known;
    const v = this.visibility();
    const index = AddrIndex.of(this.topology);
    const rank = this.shared.rank;
    const skip = new Set<number>([e.info.index, ...mine.map((p) => p.info.index)]);
    const rules = [...this.filterOf(e)];
    for (const p of mine) rules.push(...this.filterOf(p));
    for (const p of mine) {
      const i = p.info.index;
      const srcs = p.info.ipStrs;
      const covers = (list: readonly string[]) =>
        index.coversAll(list) || list.some((t) => index.covering(t).includes(i));
      const accepting = new Set<number>(v.reverseData.subarray(v.reverseStart[i]!, v.reverseStart[i + 1]!));
      for (const j of v.acceptAll) accepting.add(j);
      // One rule per protocol list, not one per node and rule: every packet
      // the gateway takes in is matched against its rules in turn, and only
      // the plain peer's own get past the source check to the destinations.
      const merged = new Map<string, FilterRule>();
      const seen = new Set<string>();
      for (const j of [...accepting].sort((a, b) => rank[a]! - rank[b]!)) {
        if (skip.has(j)) continue;
        for (const r of this.filterOf(this.order[rank[j]!]!)) {
          if (!r.DstPorts?.length || !covers(r.SrcIPs)) continue;
          const key = r.IPProto?.join(",") ?? "";
          let m = merged.get(key);
          if (!m) {
            m = { SrcIPs: [...srcs], DstPorts: [], ...(r.IPProto ? { IPProto: r.IPProto } : {}) };
            merged.set(key, m);
            rules.push(m);
          }
          for (const d of r.DstPorts) {
            const id = `${key}|${d.IP}|${d.Ports.First}-${d.Ports.Last}`;
            if (seen.has(id)) continue;
            seen.add(id);
            m.DstPorts!.push(d);
          }
        }
      }
    }
    this.gatewayFilters.set(e.row.id, rules);
    return rules;
  }

  /** A node's SSH policy; nodes without rules share one empty policy (streams compare by identity first). */
  private sshOf(e: Entry): { rules: SSHRule[] } {
    const i = e.info.index;
    let m = this.shared.sshMaps[i];
    if (!m) {
      this.shared.ssh ??= compileSsh(this.policy.policy, this.topology);
      const rules = this.shared.ssh[e.info.name] ?? [];
      m = this.shared.sshMaps[i] = rules.length ? { rules } : NO_SSH;
    }
    return m;
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
      packetFilter: this.gatewayFilterOf(e),
      sshPolicy: this.sshOf(e),
      policyVersion: this.policy.version,
    };
  }
}
