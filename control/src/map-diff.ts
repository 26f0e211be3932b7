// Deltas between two maps of the same node: what a stream sends after the
// full map. Peers are compared by identity first (snapshots reuse unchanged
// peer objects), then as JSON; a changed peer is sent whole, a removed one by
// id, everything else only when it changed.
import type { MapDelta, Peer } from "@trellis/proto";
import { jsonOf, jsonOfPeer, sameFilter, type NodeMap } from "./netmap";

/** Equal map parts: the same object, or the same JSON (cached per object; parts are never mutated). */
const same = (a: object, b: object) => a === b || jsonOf(a) === jsonOf(b);

export const samePeer = (a: Peer | undefined, b: Peer) =>
  a === b || (a !== undefined && jsonOfPeer(a) === jsonOfPeer(b));

/** Peers by id, as diffMaps reads them (a Map will do). */
export interface PeerLookup {
  get(id: string): Peer | undefined;
  readonly size: number;
  keys(): Iterable<string>;
}

/**
 * The peers a node has, by id: one array sorted by id, searched by
 * bisection. Every stream holds one; at 10,000 streams of 49 peers a Map
 * each cost 18 MB of heap for every major collection to mark, this a
 * quarter of it.
 */
export class PeerIndex implements PeerLookup {
  private list: Peer[] = [];

  /** Index these peers (replacing what was indexed). */
  reset(peers: readonly Peer[]): void {
    this.list = peers.slice().sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  private find(id: string): number {
    const list = this.list;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid]!.id < id) lo = mid + 1;
      else hi = mid;
    }
    return lo < list.length && list[lo]!.id === id ? lo : -1;
  }

  has(id: string): boolean {
    return this.find(id) >= 0;
  }

  get(id: string): Peer | undefined {
    const i = this.find(id);
    return i < 0 ? undefined : this.list[i];
  }

  /** Hold `p` in place of the indexed peer with its id (none: nothing changes). */
  replace(p: Peer): void {
    const i = this.find(p.id);
    if (i >= 0) this.list[i] = p;
  }

  get size(): number {
    return this.list.length;
  }

  keys(): string[] {
    return this.list.map((p) => p.id);
  }
}

/**
 * The delta turning the previous map into `next`, or null when nothing
 * changed. `prevPeers` holds the previous map's peers by id (authoritative
 * over `prev.peers`, which streams do not keep up to date); `prevList`, when
 * given, is the previous peer list exactly as the node has it.
 */
export function diffMaps(
  prev: NodeMap,
  prevPeers: PeerLookup,
  next: NodeMap,
  prevList?: readonly Peer[],
): Omit<MapDelta, "seq"> | null {
  const d: Omit<MapDelta, "seq"> = { type: "delta" };
  let changed = false;
  if (!same(prev.node, next.node)) {
    d.node = next.node;
    changed = true;
  }
  // Usually the peers are the very same objects in the same order (snapshots
  // reuse unchanged peers): one pass by identity, no lookups.
  const unchanged = prevList !== undefined && sameList(prevList, next.peers);
  const peersChanged: Peer[] = [];
  if (!unchanged) {
    for (const p of next.peers) {
      const q = prevPeers.get(p.id);
      if (q !== p && !samePeer(q, p)) peersChanged.push(p);
    }
  }
  let peersRemoved: string[] = [];
  if (!unchanged && prevPeers.size + peersChanged.length > next.peers.length) {
    // Some previous peer is gone (only then can the counts disagree).
    const nextIds = new Set(next.peers.map((p) => p.id));
    peersRemoved = [...prevPeers.keys()].filter((id) => !nextIds.has(id));
  }
  if (peersChanged.length) {
    d.peersChanged = peersChanged;
    changed = true;
  }
  if (peersRemoved.length) {
    d.peersRemoved = peersRemoved;
    changed = true;
  }
  if (!sameFilter(prev.packetFilter, next.packetFilter)) {
    d.packetFilter = next.packetFilter;
    changed = true;
  }
  if (!same(prev.sshPolicy, next.sshPolicy)) {
    d.sshPolicy = next.sshPolicy;
    changed = true;
  }
  if (!same(prev.relayMap, next.relayMap)) {
    d.relayMap = next.relayMap;
    changed = true;
  }
  if (!same(prev.dns, next.dns)) {
    d.dns = next.dns;
    changed = true;
  }
  if (prev.policyVersion !== next.policyVersion) {
    d.policyVersion = next.policyVersion;
    changed = true;
  }
  return changed ? d : null;
}

function sameList(a: readonly Peer[], b: readonly Peer[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false;
  return true;
}
