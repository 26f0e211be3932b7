// Which nodes have a map stream open in this process. A node is online from
// its first stream until its last one closes; the transitions are written to
// the database (online, lastSeen) and announced on the event bus. Ephemeral
// nodes are deleted when they stay offline for `ephemeralGraceMs`.
//
// Transitions are written and announced in batches, at most one batch per
// `batchMs` (the first after a quiet spell goes at once): when a restart
// makes 10,000 nodes reconnect together, each batch is one UPDATE per state,
// one event, one snapshot patch and one pass over the streams, instead of
// one of each per node — which made a reconnect storm quadratic.
//
// Per process: with several replicas each counts its own streams. The
// database flag is last-writer-wins across replicas until presence moves to
// a shared store (see control/README.md).
import type { Database } from "@trellis/db";
import type { Logger } from "@trellis/log";
import type { EventBus } from "./events";

/** Default least time between two presence batches. */
export const PRESENCE_BATCH_MS = 100;
/** Ids per UPDATE … WHERE id IN (…), well under SQLite's and PostgreSQL's parameter limits. */
const IDS_PER_UPDATE = 500;

export class Presence {
  private readonly streams = new Map<string, number>();
  private readonly reapers = new Map<string, ReturnType<typeof setTimeout>>();
  /** Transitions not yet written: the latest state of each node. */
  private pending = new Map<string, boolean>();
  private waiters: (() => void)[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private flushing: Promise<void> | null = null;
  private lastFlush = -Infinity;
  private closed = false;

  constructor(
    private readonly db: Database,
    private readonly bus: EventBus,
    private readonly log: Logger,
    private readonly opts: { ephemeralGraceMs: number; batchMs?: number },
  ) {}

  isStreaming(nodeId: string): boolean {
    return (this.streams.get(nodeId) ?? 0) > 0;
  }

  async connect(nodeId: string): Promise<void> {
    const n = (this.streams.get(nodeId) ?? 0) + 1;
    this.streams.set(nodeId, n);
    const reaper = this.reapers.get(nodeId);
    if (reaper) {
      clearTimeout(reaper);
      this.reapers.delete(nodeId);
    }
    if (n === 1) await this.mark(nodeId, true);
  }

  async disconnect(nodeId: string, ephemeral: boolean): Promise<void> {
    const n = (this.streams.get(nodeId) ?? 1) - 1;
    if (n > 0) {
      this.streams.set(nodeId, n);
      return;
    }
    this.streams.delete(nodeId);
    await this.mark(nodeId, false);
    if (ephemeral) this.scheduleRemoval([nodeId]);
  }

  /** Record a transition; resolves once it is written and announced (or failed, which is logged). */
  private mark(nodeId: string, online: boolean): Promise<void> {
    // After shutdown the database is gone; the next start reads presence afresh.
    if (this.closed) return Promise.resolve();
    this.pending.set(nodeId, online);
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.closed || this.timer || this.flushing || this.pending.size === 0) return;
    const wait = Math.max(0, this.lastFlush + (this.opts.batchMs ?? PRESENCE_BATCH_MS) - performance.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, wait);
  }

  private flush(): Promise<void> {
    const batch = this.pending;
    const waiters = this.waiters;
    this.pending = new Map();
    this.waiters = [];
    this.lastFlush = performance.now();
    const run = async () => {
      const lastSeen = new Date();
      const byState: Record<"on" | "off", string[]> = { on: [], off: [] };
      for (const [id, online] of batch) byState[online ? "on" : "off"].push(id);
      try {
        for (const [state, ids] of Object.entries(byState)) {
          for (let i = 0; i < ids.length; i += IDS_PER_UPDATE) {
            await this.db.prisma.node.updateMany({
              where: { id: { in: ids.slice(i, i + IDS_PER_UPDATE) } },
              data: { online: state === "on", lastSeen },
            });
          }
        }
        this.bus.publish({ type: "nodes", ids: [...batch.keys()], attrsOnly: true });
      } catch (err) {
        this.log.error({ err, nodes: batch.size }, "could not record presence");
      }
    };
    this.flushing = run().finally(() => {
      this.flushing = null;
      for (const w of waiters) w();
      this.schedule();
    });
    return this.flushing;
  }

  /** Delete an ephemeral node that did not come back. */
  private async reap(nodeId: string): Promise<void> {
    if (this.isStreaming(nodeId)) return;
    try {
      const deleted = await this.db.prisma.$transaction(async (tx) => {
        const gone = await tx.node.deleteMany({ where: { id: nodeId, ephemeral: true, online: false } });
        if (gone.count > 0) {
          await tx.auditEvent.create({
            data: {
              actor: "system",
              action: "node.ephemeral_removed",
              target: `node:${nodeId}`,
              detail: "{}",
            },
          });
        }
        return gone.count;
      });
      if (deleted > 0) {
        this.log.info({ node: nodeId }, "removed ephemeral node after its last stream closed");
        this.bus.publish({ type: "nodes", ids: [nodeId] });
      }
    } catch (err) {
      this.log.error({ err, node: nodeId }, "could not remove ephemeral node");
    }
  }

  /**
   * At start: ephemeral nodes left offline by the previous process get the
   * same grace period to reconnect as if their stream had just closed.
   */
  scheduleRemoval(nodeIds: readonly string[]): void {
    for (const id of nodeIds) {
      if (this.isStreaming(id) || this.reapers.has(id)) continue;
      const timer = setTimeout(() => {
        this.reapers.delete(id);
        void this.reap(id);
      }, this.opts.ephemeralGraceMs);
      timer.unref?.();
      this.reapers.set(id, timer);
    }
  }

  /**
   * Shutdown: write the transitions still waiting, and stop pending
   * removals (the next start schedules them again).
   */
  async close(): Promise<void> {
    for (const t of this.reapers.values()) clearTimeout(t);
    this.reapers.clear();
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.flushing;
    if (this.pending.size) await this.flush();
  }
}
