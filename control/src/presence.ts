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
// Each process counts its own streams. On SQLite there is one process, and
// its count is the truth. On PostgreSQL, replicas share the database: each
// records its streams as NodeStream rows under its Replica row, and a node's
// `online` is recomputed from all of them, so a node that moves to another
// replica stays online when the old connection closes. A replica renews its
// heartbeat every `heartbeatMs`; one not heard from for `ttlMs` is dead and
// any replica deletes it, and with it its streams (see SharedPresence).
import { randomUUID } from "node:crypto";
import type { Database } from "@trellis/db";
import type { Logger } from "@trellis/log";
import type { EventBus } from "./events";

/** Default least time between two presence batches. */
export const PRESENCE_BATCH_MS = 100;
/** Ids per UPDATE … WHERE id IN (…), well under SQLite's and PostgreSQL's parameter limits. */
const IDS_PER_UPDATE = 500;
/** How often a replica renews its heartbeat and looks for dead ones (PostgreSQL). */
export const REPLICA_HEARTBEAT_MS = 10_000;
/** A replica not heard from for this long is dead: its streams no longer count. */
export const REPLICA_TTL_MS = 45_000;

export interface PresenceOptions {
  ephemeralGraceMs: number;
  batchMs?: number;
  /** PostgreSQL only: see REPLICA_HEARTBEAT_MS and REPLICA_TTL_MS. */
  heartbeatMs?: number;
  ttlMs?: number;
}

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
  /** On PostgreSQL: this replica's part of the shared record. */
  private readonly shared: SharedPresence | null;

  constructor(
    private readonly db: Database,
    private readonly bus: EventBus,
    private readonly log: Logger,
    private readonly opts: PresenceOptions,
  ) {
    this.shared =
      db.target.provider === "postgresql"
        ? new SharedPresence(db, log, opts, {
            orphaned: (ids) => this.orphaned(ids),
            lost: () => {
              // Another replica took this one for dead and dropped its streams: claim them again.
              for (const id of this.streams.keys()) void this.mark(id, true);
            },
          })
        : null;
  }

  /**
   * Before the first stream. On SQLite, no stream is open in a process that
   * just started, so every node is offline; on PostgreSQL, this replica joins
   * the others and nodes whose streams died with a replica go offline.
   */
  async start(): Promise<void> {
    if (this.shared) await this.shared.start();
    else await this.db.prisma.node.updateMany({ where: { online: true }, data: { online: false } });
  }

  /** Nodes another replica's death left without a stream: announce them, give ephemeral ones their grace. */
  private async orphaned(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    this.bus.publish({ type: "nodes", ids, attrsOnly: true });
    if (this.closed) return;
    const ephemeral = await this.db.prisma.node.findMany({
      where: { id: { in: ids }, ephemeral: true, online: false },
      select: { id: true },
    });
    this.scheduleRemoval(ephemeral.map((n) => n.id));
  }

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
        if (this.shared) await this.shared.record(byState.on, byState.off, lastSeen);
        else {
          for (const [state, ids] of Object.entries(byState)) {
            for (let i = 0; i < ids.length; i += IDS_PER_UPDATE) {
              await this.db.prisma.node.updateMany({
                where: { id: { in: ids.slice(i, i + IDS_PER_UPDATE) } },
                data: { online: state === "on", lastSeen },
              });
            }
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
   * removals (the next start schedules them again). On PostgreSQL the
   * replica leaves: its streams end with it, so nodes no other replica
   * streams go offline.
   */
  async close(): Promise<void> {
    for (const t of this.reapers.values()) clearTimeout(t);
    this.reapers.clear();
    this.closed = true;
    await this.flushPending();
    await this.shared?.leave();
  }

  /** Write the transitions waiting for their batch now. */
  async flushPending(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.flushing;
    if (this.pending.size) await this.flush();
  }

  /** This process's id among the replicas (PostgreSQL), for logs and tests. */
  get replicaId(): string | null {
    return this.shared?.id ?? null;
  }
}

/** `$1, $2, …` for `n` parameters after the first `from - 1`. */
function params(n: number, from: number): string {
  return Array.from({ length: n }, (_, i) => `$${from + i}`).join(", ");
}

/**
 * This replica's streams in the database shared with other replicas
 * (PostgreSQL). Every change locks the nodes' rows first (in id order), then
 * recomputes `online` from the stream rows: two replicas changing one node
 * run one after the other, and the second sees the first's rows, so a node
 * is online exactly while some live replica holds a stream of it.
 */
class SharedPresence {
  readonly id = randomUUID();
  private timer: ReturnType<typeof setInterval> | null = null;
  private ticking: Promise<void> | null = null;

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
    private readonly opts: PresenceOptions,
    private readonly on: { orphaned: (ids: string[]) => Promise<void>; lost: () => void },
  ) {}

  async start(): Promise<void> {
    await this.db.prisma.replica.create({ data: { id: this.id, seenAt: new Date() } });
    // Online without any stream: left by a version without stream rows; nothing holds them.
    const stale = await this.db.prisma.node.findMany({
      where: { online: true, streams: { none: {} } },
      select: { id: true },
    });
    await this.settle(stale.map((n) => n.id));
    await this.sweep();
    this.timer = setInterval(() => {
      this.ticking ??= this.tick().finally(() => (this.ticking = null));
    }, this.opts.heartbeatMs ?? REPLICA_HEARTBEAT_MS);
    this.timer.unref();
  }

  /** Streams opened (`on`) and closed (`off`) on this replica. */
  async record(on: string[], off: string[], lastSeen: Date): Promise<void> {
    for (let i = 0; i < on.length; i += IDS_PER_UPDATE) {
      await this.change(on.slice(i, i + IDS_PER_UPDATE), [], lastSeen);
    }
    for (let i = 0; i < off.length; i += IDS_PER_UPDATE) {
      await this.change([], off.slice(i, i + IDS_PER_UPDATE), lastSeen);
    }
  }

  private async change(on: string[], off: string[], lastSeen: Date): Promise<void> {
    const ids = [...on, ...off];
    await this.db.prisma.$transaction(async (tx) => {
      await tx.$queryRawUnsafe(
        `SELECT 1 FROM "Node" WHERE "id" IN (${params(ids.length, 1)}) ORDER BY "id" FOR UPDATE`,
        ...ids,
      );
      if (on.length) {
        // Nodes deleted meanwhile are skipped; a stream already recorded stays one row.
        await tx.$executeRawUnsafe(
          `INSERT INTO "NodeStream" ("nodeId", "replicaId") SELECT "id", $1 FROM "Node" WHERE "id" IN (${params(on.length, 2)}) ON CONFLICT DO NOTHING`,
          this.id,
          ...on,
        );
      }
      if (off.length) {
        await tx.nodeStream.deleteMany({ where: { replicaId: this.id, nodeId: { in: off } } });
      }
      await tx.$executeRawUnsafe(
        `UPDATE "Node" n SET "online" = EXISTS (SELECT 1 FROM "NodeStream" s WHERE s."nodeId" = n."id"), "lastSeen" = $1 WHERE n."id" IN (${params(ids.length, 2)})`,
        lastSeen,
        ...ids,
      );
    });
  }

  /** Recompute `online` of nodes whose stream rows went away with a replica. */
  private async settle(ids: string[], dead: string[] = []): Promise<void> {
    const sorted = [...ids].sort();
    await this.db.prisma.$transaction(async (tx) => {
      for (let i = 0; i < sorted.length; i += IDS_PER_UPDATE) {
        const chunk = sorted.slice(i, i + IDS_PER_UPDATE);
        await tx.$queryRawUnsafe(
          `SELECT 1 FROM "Node" WHERE "id" IN (${params(chunk.length, 1)}) ORDER BY "id" FOR UPDATE`,
          ...chunk,
        );
      }
      if (dead.length) await tx.replica.deleteMany({ where: { id: { in: dead } } });
      for (let i = 0; i < sorted.length; i += IDS_PER_UPDATE) {
        const chunk = sorted.slice(i, i + IDS_PER_UPDATE);
        await tx.$executeRawUnsafe(
          `UPDATE "Node" n SET "online" = EXISTS (SELECT 1 FROM "NodeStream" s WHERE s."nodeId" = n."id"), "lastSeen" = $1 WHERE n."id" IN (${params(chunk.length, 2)}) AND n."online"`,
          new Date(),
          ...chunk,
        );
      }
    });
    await this.on.orphaned(sorted);
  }

  /** Renew the heartbeat, then drop replicas not heard from for `ttlMs`. */
  private async tick(): Promise<void> {
    try {
      const { count } = await this.db.prisma.replica.updateMany({
        where: { id: this.id },
        data: { seenAt: new Date() },
      });
      if (count === 0) {
        this.log.warn({ replica: this.id }, "this replica was taken for dead; recording its streams again");
        await this.db.prisma.replica.create({ data: { id: this.id, seenAt: new Date() } });
        this.on.lost();
      }
      await this.sweep();
    } catch (err) {
      this.log.error({ err }, "replica heartbeat failed");
    }
  }

  private async sweep(): Promise<void> {
    const cutoff = new Date(Date.now() - (this.opts.ttlMs ?? REPLICA_TTL_MS));
    const dead = await this.db.prisma.replica.findMany({
      where: { seenAt: { lt: cutoff }, id: { not: this.id } },
      select: { id: true },
    });
    if (dead.length === 0) return;
    const ids = dead.map((r) => r.id);
    const streams = await this.db.prisma.nodeStream.findMany({
      where: { replicaId: { in: ids } },
      select: { nodeId: true },
    });
    this.log.warn(
      { replicas: ids, streams: streams.length },
      "dropping the streams of replicas that stopped",
    );
    await this.settle([...new Set(streams.map((s) => s.nodeId))], ids);
  }

  /** Shutdown: this replica's streams end with it. */
  async leave(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.ticking;
    try {
      const streams = await this.db.prisma.nodeStream.findMany({
        where: { replicaId: this.id },
        select: { nodeId: true },
      });
      await this.settle(
        streams.map((s) => s.nodeId),
        [this.id],
      );
    } catch (err) {
      this.log.error({ err }, "could not record this replica's streams as ended");
    }
  }
}
