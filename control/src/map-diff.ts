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

/**
 * The delta turning the previous map into `next`, or null when nothing
 * changed. `prevPeers` holds the previous map's peers by id (authoritative
 * over `prev.peers`, which streams do not keep up to date); `prevList`, when
 * given, is the previous peer list exactly as the node has it.
 */
export function diffMaps(
  prev: NodeMap,
  prevPeers: ReadonlyMap<string, Peer>,
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
