// Which nodes have a map stream open in this process. A node is online from
// its first stream until its last one closes; the transitions are written to
// the database (online, lastSeen) and announced on the event bus. Ephemeral
// nodes are deleted when they stay offline for `ephemeralGraceMs`.
//
// Per process: with several replicas each counts its own streams. The
// database flag is last-writer-wins across replicas until presence moves to
// a shared store (see control/README.md).
import type { Database } from "@trellis/db";
import type { Logger } from "@trellis/log";
import type { EventBus } from "./events";

export class Presence {
  private readonly streams = new Map<string, number>();
  private readonly reapers = new Map<string, ReturnType<typeof setTimeout>>();

  constructor(
    private readonly db: Database,
    private readonly bus: EventBus,
    private readonly log: Logger,
    private readonly opts: { ephemeralGraceMs: number },
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

  private async mark(nodeId: string, online: boolean): Promise<void> {
    try {
      await this.db.prisma.node.updateMany({ where: { id: nodeId }, data: { online, lastSeen: new Date() } });
      this.bus.publish({ type: "nodes", ids: [nodeId], attrsOnly: true });
    } catch (err) {
      this.log.error({ err, node: nodeId, online }, "could not record presence");
    }
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

  /** Stop pending removals (shutdown); the next start schedules them again. */
  close(): void {
    for (const t of this.reapers.values()) clearTimeout(t);
    this.reapers.clear();
  }
}
