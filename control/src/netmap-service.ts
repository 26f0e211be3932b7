// The current TailnetSnapshot. A structural change (membership, tags, routes,
// settings) makes the next caller rebuild it from the database; a new policy
// alone rebuilds it from the nodes already read (the policy event promises no
// node changed), keeping every node's parts; an attributes-only change
// (endpoints, online) patches just those nodes into a new snapshot that
// shares everything else. Many streams asking at once share
// one build or patch, and no stream gets a snapshot older than the last
// change it was told about.
//
// Key expiry needs no write: each build arms a timer for the earliest expiry
// among the nodes in it, and when it fires `onExpire` is told which nodes
// expired (the runtime announces them as a node change, so their streams end
// and their peers drop them).
import type { Database } from "@trellis/db";
import type { DnsConfig, RelayMap } from "@trellis/proto";
import { TailnetSnapshot, type NodeMap } from "./netmap";
import type { ActivePolicy } from "./policy-store";

/** What every map carries besides the tailnet itself, from the settings in force. */
export interface MapConfig {
  /** Suffix of peers' DNS names. */
  dnsDomain: string;
  dns: DnsConfig;
  relayMap: RelayMap;
}

export interface NetmapServiceOptions {
  /** The settings in force; called at each rebuild (cache it: streams compare its parts by identity first). */
  config: () => Promise<MapConfig>;
  /** The policy in force (the runtime's PolicyStore: each version parsed once). */
  policy: () => Promise<ActivePolicy>;
  now?: () => Date;
  /** Keys of these nodes expired just now. */
  onExpire?: (nodeIds: string[]) => void;
}

/**
 * Rows as plain objects. Prisma returns rows in V8's dictionary mode (a hash
 * table each, ~1.6 kB for a node row); a snapshot holds every row for as long
 * as it is current, and a spread copy has fast properties (~0.2 kB) — at
 * 10,000 nodes that is 14 MB less for every garbage collection to mark.
 */
function compact<T extends object>(rows: T[]): T[] {
  return rows.map((r) => ({ ...r }));
}

/**
 * Maps handed out per turn of the event loop. After a policy change every
 * stream wants its map from the same new snapshot at once; unpaced, all
 * 10,000 messages would be made before the first is written, held in memory
 * together (promoted to the old generation, then collected by a major GC)
 * and reach nodes only at the end. A batch per turn lets each batch go out
 * to its sockets before the next is made: nodes start receiving after the
 * first batch, and what a batch allocated dies young.
 */
export const MAPS_PER_TURN = 256;

/**
 * Lets waiting callers through `batch` at a time, one batch per turn of the
 * event loop (setImmediate), in arrival order.
 */
export class Pacer {
  private waiting: (() => void)[] = [];
  private head = 0;
  private scheduled = false;
  constructor(private readonly batch: number) {}

  turn(): Promise<void> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.release);
      }
    });
  }

  private readonly release = () => {
    const end = Math.min(this.head + this.batch, this.waiting.length);
    for (; this.head < end; this.head++) this.waiting[this.head]!();
    if (this.head < this.waiting.length) {
      // Drop the released from the front now and then, so a queue that never empties does not grow.
      if (this.head >= 4096) {
        this.waiting = this.waiting.slice(this.head);
        this.head = 0;
      }
      setImmediate(this.release);
      return;
    }
    this.waiting = [];
    this.head = 0;
    this.scheduled = false;
  };
}

/** Longest setTimeout delay; later expiries are re-armed when it fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class NetmapService {
  private current: Promise<TailnetSnapshot> | null = null;
  private stale = true;
  /** A new policy to apply to the current snapshot's nodes. */
  private policyStale = false;
  private readonly patchIds = new Set<string>();
  /** The last snapshot built, whose peers a rebuild reuses when unchanged. */
  private previous: TailnetSnapshot | undefined;
  /** The map configuration each snapshot was built with (patched copies inherit it). */
  private readonly configs = new WeakMap<TailnetSnapshot, MapConfig>();
  private expiryTimer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;
  private readonly pacer = new Pacer(MAPS_PER_TURN);

  constructor(
    private readonly db: Database,
    private readonly opts: NetmapServiceOptions,
  ) {}

  /** Something changed: all of it (no ids), or only attributes of the given nodes. */
  invalidate(attrsOnlyIds?: readonly string[]): void {
    if (!attrsOnlyIds) {
      this.stale = true;
      this.policyStale = false;
      this.patchIds.clear();
    } else if (!this.stale) {
      for (const id of attrsOnlyIds) this.patchIds.add(id);
    }
  }

  /** A new policy was saved and no node changed with it. */
  invalidatePolicy(): void {
    if (!this.stale) this.policyStale = true;
  }

  snapshot(): Promise<TailnetSnapshot> {
    if (this.stale || !this.current) {
      this.stale = false;
      this.policyStale = false;
      this.patchIds.clear();
      this.current = this.track(this.build());
    } else if (this.policyStale) {
      // Pending attribute changes are read with the new policy's rebuild.
      this.policyStale = false;
      const ids = [...this.patchIds];
      this.patchIds.clear();
      this.current = this.track(this.current.then((s) => this.rebuildPolicy(s, ids)));
    } else if (this.patchIds.size > 0) {
      const ids = [...this.patchIds];
      this.patchIds.clear();
      this.current = this.track(this.current.then((s) => this.patch(s, ids)));
    }
    return this.current;
  }

  /** A failed build or patch is not kept: the next caller rebuilds. */
  private track(p: Promise<TailnetSnapshot>): Promise<TailnetSnapshot> {
    p.then(
      (s) => (this.previous = s),
      () => {
        if (this.current === p) this.stale = true;
      },
    );
    return p;
  }

  private async build(): Promise<TailnetSnapshot> {
    const [rows, users, policy, config] = await Promise.all([
      this.db.prisma.node.findMany().then(compact),
      this.db.prisma.user.findMany(),
      this.opts.policy(),
      this.opts.config(),
    ]);
    const snap = TailnetSnapshot.build(rows, users, policy, config.dnsDomain, this.now(), this.previous);
    this.configs.set(snap, config);
    this.armExpiry(snap.nextExpiry());
    return snap;
  }

  /** The same nodes (patched with `ids`' rows) under the policy and settings in force. */
  private async rebuildPolicy(s: TailnetSnapshot, ids: string[]): Promise<TailnetSnapshot> {
    const [patched, users, policy, config] = await Promise.all([
      ids.length ? this.patch(s, ids) : s,
      this.db.prisma.user.findMany(),
      this.opts.policy(),
      this.opts.config(),
    ]);
    const snap = TailnetSnapshot.build(patched.rows, users, policy, config.dnsDomain, this.now(), patched);
    this.configs.set(snap, config);
    this.armExpiry(snap.nextExpiry());
    return snap;
  }

  private async patch(s: TailnetSnapshot, ids: string[]): Promise<TailnetSnapshot> {
    const rows = compact(await this.db.prisma.node.findMany({ where: { id: { in: ids } } }));
    const next = s.withRows(rows);
    this.configs.set(next, this.configs.get(s)!);
    return next;
  }

  private armExpiry(next: { at: number; ids: string[] } | null): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
    if (!next || this.closed) return;
    const delay = Math.max(0, next.at - this.now().getTime());
    this.expiryTimer = setTimeout(
      () => {
        this.expiryTimer = null;
        if (this.now().getTime() < next.at) return this.armExpiry(next);
        this.invalidate();
        this.opts.onExpire?.(next.ids);
      },
      Math.min(delay + 1, MAX_TIMER_MS),
    );
    this.expiryTimer.unref?.();
  }

  private now(): Date {
    return this.opts.now?.() ?? new Date();
  }

  /**
   * The current map of one node; null when it takes no part in the tailnet.
   * Callers get their maps a batch per turn of the event loop (see Pacer).
   */
  async mapFor(nodeId: string): Promise<NodeMap | null> {
    const snap = await this.snapshot();
    await this.pacer.turn();
    const config = this.configs.get(snap)!;
    return snap.mapFor(nodeId, config.relayMap, config.dns);
  }

  /** Why a node has no map any more (for the `end` event of its stream). */
  async whyGone(
    nodeId: string,
    streamKey: string,
  ): Promise<"deleted" | "key_expired" | "key_rotated" | "unauthorized"> {
    const row = await this.db.prisma.node.findUnique({
      where: { id: nodeId },
      select: { nodeKey: true, expiresAt: true, authorized: true },
    });
    if (!row) return "deleted";
    if (row.nodeKey !== streamKey) return "key_rotated";
    if (row.expiresAt !== null && row.expiresAt <= this.now()) return "key_expired";
    if (!row.authorized) return "unauthorized";
    return "deleted";
  }

  close(): void {
    this.closed = true;
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
  }
}
