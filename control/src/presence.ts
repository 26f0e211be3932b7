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
import { audit } from "./audit";
import { recordChange } from "./outbox";
import { retireNames } from "./names";

/** Default least time between two presence batches. */
export const PRESENCE_BATCH_MS = 100;
/** Ids per UPDATE … WHERE id IN (…), well under SQLite's and PostgreSQL's parameter limits. */
const IDS_PER_UPDATE = 500;
/** Longest wait before writing presence again after the database failed. */
const MAX_RETRY_MS = 30_000;
/** Transactions of shared presence wait for row locks held by other replicas' changes. */
const TX_OPTIONS = { maxWait: 10_000, timeout: 30_000 };
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
  /** After a failed write: when to try again, and the delay that led there (doubling). */
  private retryAt = -Infinity;
  private retryDelay = 0;
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
            reconcile: (recorded) => {
              for (const id of this.streams.keys()) if (!recorded.has(id)) void this.mark(id, true);
              for (const id of recorded) if (!this.streams.has(id)) void this.mark(id, false);
            },
            idle: () => !this.flushing && !this.timer && this.pending.size === 0,
            differs: (recorded) =>
              recorded.size !== this.streams.size || [...this.streams.keys()].some((id) => !recorded.has(id)),
            streaming: () => this.streams.size,
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
    const next = Math.max(this.lastFlush + (this.opts.batchMs ?? PRESENCE_BATCH_MS), this.retryAt);
    const wait = Math.max(0, next - performance.now());
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
        this.retryDelay = 0;
        this.retryAt = -Infinity;
      } catch (err) {
        // Written again later (every step is idempotent), unless a newer transition replaced it:
        // a lost "closed" would leave a node online for as long as this process lives.
        for (const [id, online] of batch) if (!this.pending.has(id)) this.pending.set(id, online);
        this.retryDelay = Math.min(Math.max(2 * this.retryDelay, 250), MAX_RETRY_MS);
        this.retryAt = performance.now() + this.retryDelay;
        this.log.error({ err, nodes: batch.size, retryInMs: this.retryDelay }, "could not record presence");
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
      const change = await this.db.prisma.$transaction(async (tx) => {
        const node = await tx.node.findFirst({ where: { id: nodeId, ephemeral: true, online: false } });
        if (!node) return null;
        await retireNames(tx, [node]);
        const gone = await tx.node.deleteMany({ where: { id: nodeId, ephemeral: true, online: false } });
        if (gone.count === 0) return null;
        await audit(tx, { actor: "system", action: "node.ephemeral_removed", target: `node:${nodeId}` });
        return recordChange(this.db, tx, { type: "nodes", ids: [nodeId] });
      });
      if (change) {
        this.log.info({ node: nodeId }, "removed ephemeral node after its last stream closed");
        this.bus.publish(change);
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

/** The database's clock as Prisma stores DateTime on PostgreSQL (UTC, no zone): replicas' clocks may differ. */
const DB_NOW = `(now() AT TIME ZONE 'UTC')`;

/** Set `online` from the stream rows of `n` nodes ($2…), `lastSeen` ($1) for those that were online. */
function recountSql(n: number): string {
  return `UPDATE "Node" n SET "online" = EXISTS (SELECT 1 FROM "NodeStream" s WHERE s."nodeId" = n."id"), "lastSeen" = $1 WHERE n."id" IN (${params(n, 2)}) AND n."online"`;
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
  /** After a failed heartbeat (the database was away): no sweeping before others could beat again. */
  private sweepAfter = 0;

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
    private readonly opts: PresenceOptions,
    private readonly on: {
      orphaned: (ids: string[]) => Promise<void>;
      lost: () => void;
      /** Make the rows match the streams held: `recorded` are this replica's rows now. */
      reconcile: (recorded: ReadonlySet<string>) => void;
      /** True while no presence write is waiting or running (rows and streams can be compared). */
      idle: () => boolean;
      differs: (recorded: ReadonlySet<string>) => boolean;
      streaming: () => number;
    },
  ) {}

  async start(): Promise<void> {
    await this.db.prisma.$executeRawUnsafe(
      `INSERT INTO "Replica" ("id", "seenAt") VALUES ($1, ${DB_NOW})`,
      this.id,
    );
    // Online without any stream: left by a version without stream rows; nothing holds them.
    const stale = await this.db.prisma.node.findMany({
      where: { online: true, streams: { none: {} } },
      select: { id: true },
    });
    await this.recount(stale.map((n) => n.id));
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
    }, TX_OPTIONS);
  }

  /** Recompute `online` of nodes that may have lost their last stream, and announce them. */
  private async recount(ids: string[]): Promise<void> {
    for (let i = 0; i < ids.length; i += IDS_PER_UPDATE) {
      const chunk = ids.slice(i, i + IDS_PER_UPDATE);
      await this.db.prisma.$transaction(async (tx) => {
        await tx.$queryRawUnsafe(
          `SELECT 1 FROM "Node" WHERE "id" IN (${params(chunk.length, 1)}) ORDER BY "id" FOR UPDATE`,
          ...chunk,
        );
        await tx.$executeRawUnsafe(recountSql(chunk.length), new Date(), ...chunk);
      }, TX_OPTIONS);
    }
    await this.on.orphaned(ids);
  }

  /**
   * End every stream of a replica (dead, or this one leaving), then delete
   * it. A chunk of streams at a time, each with its nodes locked: delete the
   * rows, recount. The replica row goes last, locked (so no stream is added
   * meanwhile) and only once it has no stream left: a replica taken for dead
   * that was only paused may still add some, and those go the same way.
   * Returns the nodes whose streams ended.
   */
  private async endStreams(replicaId: string): Promise<string[]> {
    const ended = new Set<string>();
    // Bounded: each round ends up to IDS_PER_UPDATE streams or deletes the replica.
    for (let round = 0; round < 2_000; round++) {
      const rows = await this.db.prisma.nodeStream.findMany({
        where: { replicaId },
        select: { nodeId: true },
        take: IDS_PER_UPDATE,
      });
      if (rows.length === 0) {
        const gone = await this.db.prisma.$transaction(async (tx) => {
          await tx.$queryRawUnsafe(`SELECT 1 FROM "Replica" WHERE "id" = $1 FOR UPDATE`, replicaId);
          if ((await tx.nodeStream.count({ where: { replicaId } })) > 0) return false;
          await tx.replica.deleteMany({ where: { id: replicaId } });
          return true;
        }, TX_OPTIONS);
        if (gone) break;
        continue;
      }
      const ids = rows.map((r) => r.nodeId);
      await this.db.prisma.$transaction(async (tx) => {
        await tx.$queryRawUnsafe(
          `SELECT 1 FROM "Node" WHERE "id" IN (${params(ids.length, 1)}) ORDER BY "id" FOR UPDATE`,
          ...ids,
        );
        await tx.nodeStream.deleteMany({ where: { replicaId, nodeId: { in: ids } } });
        await tx.$executeRawUnsafe(recountSql(ids.length), new Date(), ...ids);
      }, TX_OPTIONS);
      for (const id of ids) ended.add(id);
    }
    return [...ended];
  }

  /**
   * Renew the heartbeat; check this replica's rows against its streams
   * (they drift only if it was taken for dead, or a write was lost); then
   * drop replicas not heard from for `ttlMs`.
   */
  private async tick(): Promise<void> {
    try {
      const beat = await this.db.prisma.$executeRawUnsafe(
        `UPDATE "Replica" SET "seenAt" = ${DB_NOW} WHERE "id" = $1`,
        this.id,
      );
      if (beat === 0) {
        this.log.warn({ replica: this.id }, "this replica was taken for dead; recording its streams again");
        await this.db.prisma.$executeRawUnsafe(
          `INSERT INTO "Replica" ("id", "seenAt") VALUES ($1, ${DB_NOW})`,
          this.id,
        );
        this.on.lost();
      } else if (this.on.idle()) {
        const rows = await this.db.prisma.nodeStream.findMany({
          where: { replicaId: this.id },
          select: { nodeId: true },
        });
        const recorded = new Set(rows.map((r) => r.nodeId));
        // Only if nothing was written meanwhile; otherwise the next beat compares again.
        if (this.on.idle() && this.on.differs(recorded)) {
          this.log.warn(
            { recorded: recorded.size, streaming: this.on.streaming() },
            "this replica's stream rows differ from its streams; correcting them",
          );
          this.on.reconcile(recorded);
        }
      }
      await this.sweep();
    } catch (err) {
      this.sweepAfter = Date.now() + (this.opts.ttlMs ?? REPLICA_TTL_MS);
      this.log.error({ err }, "replica heartbeat failed");
    }
  }

  /** Delete replicas whose heartbeat is older than `ttlMs` by the database's clock, and their streams. */
  private async sweep(): Promise<void> {
    if (Date.now() < this.sweepAfter) return;
    const dead = await this.db.prisma.$queryRawUnsafe<{ id: string }[]>(
      `SELECT "id" FROM "Replica" WHERE "seenAt" < ${DB_NOW} - ($1::double precision * interval '1 millisecond') AND "id" <> $2`,
      this.opts.ttlMs ?? REPLICA_TTL_MS,
      this.id,
    );
    for (const { id } of dead) {
      const ended = await this.endStreams(id);
      this.log.warn({ replica: id, streams: ended.length }, "dropped the streams of a replica that stopped");
      await this.on.orphaned(ended);
    }
  }

  /** Shutdown: this replica's streams end with it. */
  async leave(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.ticking;
    try {
      await this.on.orphaned(await this.endStreams(this.id));
    } catch (err) {
      this.log.error({ err }, "could not record this replica's streams as ended");
    }
  }
}
