// One node's map stream: the full map first, then a delta after each change
// that alters what this node sees. Changes arriving close together are
// coalesced, and updates never overlap, so deltas apply in order.
//
// Two kinds of update: after a structural change (membership, tags, routes,
// policy) the node's whole map is cut again and diffed; after an
// attributes-only change (endpoints, online) only the named nodes are looked
// at, and only if they are this node or its peers — visibility cannot have
// changed — so such changes cost each stream O(changed nodes), not O(tailnet).
import type { Logger } from "@trellis/log";
import type { MapEnd, MapMessage, Peer } from "@trellis/proto";
import { ControlError } from "./errors";
import { diffMaps, PeerIndex, samePeer } from "./map-diff";
import { jsonOf, PATCHED_LIST_MAX, type NodeMap } from "./netmap";
import type { NetmapService } from "./netmap-service";

export class MapSession {
  private last: NodeMap | null = null;
  private readonly peers = new PeerIndex();
  /**
   * The peer list exactly as the node has it (the snapshot's very objects,
   * so the next full update compares by identity); undefined when too long
   * to keep up to date through attribute changes (PATCHED_LIST_MAX).
   */
  private peerList: readonly Peer[] | undefined;
  private seq = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running = false;
  private again = false;
  private closed = false;
  private started = false;
  /** Pending work: a full recompute, and/or nodes whose attributes changed. */
  private full = false;
  private readonly attrIds = new Set<string>();

  constructor(
    readonly nodeId: string,
    private readonly netmaps: NetmapService,
    private readonly send: (msg: MapMessage) => void,
    private readonly log: Logger,
    private readonly opts: {
      coalesceMs?: number;
      /** The node key the stream was opened with: a map under another key (rotation) ends it. */
      nodeKey?: string;
      /** The node no longer takes part under this key; the stream should end. */
      onGone?: (reason: MapEnd["reason"]) => void;
    } = {},
  ) {}

  /** Build the first map; throws 401 when the node no longer takes part (nothing has been sent). */
  async first(): Promise<MapMessage> {
    const map = await this.netmaps.mapFor(this.nodeId);
    if (!map)
      throw new ControlError("node_inactive", 401, "this node is not (or no longer) part of the tailnet");
    this.remember(map);
    this.started = true;
    // A change announced while the first map was being read may be missing from it.
    if (this.full || this.attrIds.size) this.schedule();
    return { ...map, type: "full", seq: this.seq };
  }

  private remember(map: NodeMap): void {
    this.last = map;
    this.peerList = map.peers;
    this.peers.reset(map.peers);
  }

  /** A change happened: structural (no ids) or to the attributes of `attrsOnlyIds`. */
  notify(attrsOnlyIds?: readonly string[]): void {
    if (this.closed) return;
    if (!attrsOnlyIds) this.full = true;
    else for (const id of attrsOnlyIds) if (id === this.nodeId || this.peers.has(id)) this.attrIds.add(id);
    if (this.started && (this.full || this.attrIds.size)) this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.update();
    }, this.opts.coalesceMs ?? 20);
  }

  private async update(): Promise<void> {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      do {
        this.again = false;
        if (this.full) await this.updateFull();
        else if (this.attrIds.size) await this.updateAttrs();
      } while ((this.again || this.full || this.attrIds.size > 0) && !this.closed);
    } catch (err) {
      this.log.error({ err, node: this.nodeId }, "map update failed");
    } finally {
      this.running = false;
    }
  }

  private async updateFull(): Promise<void> {
    this.full = false;
    this.attrIds.clear();
    const next = await this.netmaps.mapFor(this.nodeId);
    if (this.closed) return;
    // Deleted, expired (or logged out), rotated to another key, or its approval
    // withdrawn: the stream ends, saying why. (A node that was never approved
    // streams its pending map until it is.)
    let gone: MapEnd["reason"] | null = null;
    if (!next) gone = await this.netmaps.whyGone(this.nodeId, this.opts.nodeKey ?? "");
    else if (this.opts.nodeKey !== undefined && next.node.key !== this.opts.nodeKey) gone = "key_rotated";
    else if (this.last!.node.authorized && !next.node.authorized) gone = "unauthorized";
    if (gone || !next) {
      if (!this.closed) this.opts.onGone?.(gone ?? "deleted");
      this.close();
      return;
    }
    const delta = diffMaps(this.last!, this.peers, next, this.peerList);
    if (delta?.peersChanged || delta?.peersRemoved) this.remember(next);
    else {
      // Same peers (by identity or by value): the index by id stays valid.
      this.last = next;
      this.peerList = next.peers;
    }
    if (delta) this.send({ ...delta, seq: ++this.seq });
  }

  private async updateAttrs(): Promise<void> {
    const ids = [...this.attrIds];
    this.attrIds.clear();
    const snap = await this.netmaps.snapshot();
    if (this.closed || this.full) return; // a full update follows and covers these
    const changed: Peer[] = [];
    /** Peers to hold as the snapshot's objects: changed, or equal but new objects. */
    const adopted: Peer[] = [];
    let node: NodeMap["node"] | undefined;
    for (const id of ids) {
      if (id === this.nodeId) {
        const self = snap.selfNode(id);
        if (self && self !== this.last!.node && jsonOf(self) !== jsonOf(this.last!.node)) node = self;
        continue;
      }
      const p = snap.peer(id);
      const had = this.peers.get(id);
      if (!p || !had || had === p) continue;
      adopted.push(p);
      if (!samePeer(had, p)) changed.push(p);
    }
    this.adopt(adopted);
    if (node) this.last = { ...this.last!, node };
    if (!node && changed.length === 0) return;
    this.send({
      type: "delta",
      seq: ++this.seq,
      ...(node ? { node } : {}),
      ...(changed.length ? { peersChanged: changed } : {}),
    });
  }

  /** Hold these peer objects in place of the ones with their ids. */
  private adopt(peers: readonly Peer[]): void {
    if (peers.length === 0) return;
    for (const p of peers) this.peers.replace(p);
    const list = this.peerList;
    if (!list) return;
    if (list.length > PATCHED_LIST_MAX) {
      this.peerList = undefined;
      return;
    }
    const copy = list.slice();
    for (const p of peers) {
      const k = copy.findIndex((q) => q.id === p.id);
      if (k >= 0) copy[k] = p;
    }
    this.peerList = copy;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
