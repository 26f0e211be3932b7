import { randomUUID } from "node:crypto";
import pg from "pg";
import { z } from "zod";
import type { Database } from "@trellis/db";
import type { Logger } from "@trellis/log";
import { publicDatabaseError } from "./db-errors";
import { controlEventSchema, type ControlEvent, type EventBus } from "./events";
import {
  CHANNEL,
  IDS_PER_NOTIFY,
  OUTBOX_RETENTION_MS,
  changesAfter,
  latestChange,
  pruneChanges,
} from "./outbox";

export { CHANNEL };

/** A change too large for NOTIFY, announced by its number: the outbox has it. */
const SeqOnly = z.object({ type: z.literal("seq"), seq: z.number().int().positive() });
const Wire = z.union([controlEventSchema({ maxIds: IDS_PER_NOTIFY, originRequired: true }), SeqOnly]);
/** Changes as the outbox stores them: any number of ids. */
const Stored = controlEventSchema({ maxIds: 1_000_000, originRequired: false });

/** How often the outbox is read whatever NOTIFY said, and the LISTEN connection made to answer. */
export const CHECK_MS = 5_000;
/**
 * After a gap (a change published with an earlier one unheard), how long
 * the earlier one's NOTIFY may take before the outbox is read: changes
 * committed together on two replicas can be announced out of order here.
 */
const GAP_WAIT_MS = 50;
/** Changes replayed one by one from the outbox; beyond that, everything is recomputed once. */
const REPLAY_MAX = 100;
/** Reconnection backoff: short, because every NOTIFY missed meanwhile waits for it or the next check. */
const MIN_RETRY_MS = 100;
const MAX_RETRY_MS = 1_000;
/** Checks between two prunings of the outbox (about a minute at the default interval). */
const PRUNE_EVERY = 12;

export interface BridgeOptions {
  /** See CHECK_MS. */
  checkMs?: number;
}

/** What `/api/health` says about this replica's link to the others. */
export interface BridgeHealth {
  /** The LISTEN connection is up. */
  listening: boolean;
  /** Every change up to this outbox number has been applied here. */
  seq: number;
  /** Since the outbox was last read (at start, by a check, a gap or a new stream). */
  checked_s_ago: number;
  /** Why the last read of the outbox failed (without connection details), while it does. */
  error?: string;
}

/**
 * Joins this process's event bus to every other server process on the same
 * PostgreSQL database.
 *
 * Changes in the outbox (outbox.ts) are NOTIFYed by their own transactions
 * at commit; this bridge LISTENs, publishes each locally once (the bus
 * dedups by number: the writer here publishes its own too), and reads the
 * outbox for what it did not hear: at every (re)connect, when a number is
 * skipped, every `checkMs`, and before a new map stream's first map
 * (`catchUp`). NOTIFY is the fast path; the outbox is the truth.
 *
 * Other events (online state, endpoints, signals) are forwarded as plain
 * NOTIFY and come back through LISTEN (never re-sent: they carry their
 * origin). Losing one costs a stale attribute until the next change, and
 * every reconnect recomputes all maps, which covers what was missed.
 */
export class PgEventBridge {
  readonly origin = randomUUID();
  private client: pg.Client | null = null;
  private closed = false;
  private retryMs = MIN_RETRY_MS;
  private readonly unsubscribe: () => void;
  private timer: ReturnType<typeof setInterval> | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private gapTimer: ReturnType<typeof setTimeout> | null = null;
  /** The outbox read running, and the one callers arriving meanwhile wait for. */
  private reading: Promise<void> | null = null;
  private nextRead: Promise<void> | null = null;
  private lastRead = performance.now();
  private lastError: string | null = null;
  private ticks = 0;
  private ticking: Promise<void> | null = null;
  /** Queries on the LISTEN connection, one at a time (pg does not want them overlapping). */
  private queue: Promise<unknown> = Promise.resolve();
  /** Notifications sent and received, outbox replays and full recomputes (for tests and metrics). */
  readonly stats = { sent: 0, received: 0, invalid: 0, reconnects: 0, replayed: 0, recomputes: 0 };

  private constructor(
    private readonly db: Database,
    private readonly bus: EventBus,
    private readonly log: Logger,
    private readonly opts: BridgeOptions,
  ) {
    this.unsubscribe = bus.subscribe((e) => {
      // Numbered changes went out with their commit; events from elsewhere carry an origin.
      if (!e.origin && (e.type === "signal" || e.seq === undefined)) this.forward(e);
    });
    bus.sequence.onGap = () => this.gapSoon();
  }

  /** Connect and LISTEN; resolves once listening, with every change committed so far counted as applied. */
  static async start(
    db: Database,
    bus: EventBus,
    log: Logger,
    opts: BridgeOptions = {},
  ): Promise<PgEventBridge> {
    const bridge = new PgEventBridge(db, bus, log, opts);
    try {
      await bridge.connect();
      // Listening first: a change committed from here on is heard; those before are in the tables that maps are built from.
      bus.sequence.advanceTo(await latestChange(db));
    } catch (err) {
      await bridge.close();
      throw err;
    }
    bridge.timer = setInterval(() => {
      bridge.ticking ??= bridge.tick().finally(() => (bridge.ticking = null));
    }, opts.checkMs ?? CHECK_MS);
    bridge.timer.unref();
    return bridge;
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.db.target.url,
      // Operators (and tests) find each replica's listener in pg_stat_activity.
      application_name: `trellis-events ${this.origin}`,
      // A connection that died without a word (a dropped route) is found by the OS too, not only by the checks.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      connectionTimeoutMillis: 10_000,
    });
    client.on("notification", (msg) => this.onNotification(msg.payload));
    client.on("error", (err) => {
      this.log.warn({ err }, "event bridge connection failed; reconnecting");
      this.reconnectSoon(client);
    });
    client.on("end", () => this.reconnectSoon(client));
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
    } catch (err) {
      client.removeAllListeners("end");
      client.on("error", () => undefined);
      await client.end().catch(() => undefined);
      throw err;
    }
    this.client = client;
    // Nothing queued for the old connection holds up the new one.
    this.queue = Promise.resolve();
    this.retryMs = MIN_RETRY_MS;
  }

  private reconnectSoon(failed: pg.Client): void {
    if (this.closed || this.client !== failed) return;
    this.client = null;
    failed.end().catch(() => undefined);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    const delay = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.reconnect();
    }, delay);
    this.reconnectTimer.unref();
  }

  private async reconnect(): Promise<void> {
    if (this.closed) return;
    try {
      await this.connect();
    } catch (err) {
      this.log.warn({ err }, "event bridge reconnect failed");
      this.scheduleReconnect();
      return;
    }
    if (this.closed) return;
    this.stats.reconnects++;
    this.log.info({ reconnects: this.stats.reconnects }, "event bridge listening again");
    // What was NOTIFYed while this process was not listening is lost: the
    // outbox and the tables have it, so every map is recomputed from them.
    await this.recompute("reconnect");
  }

  /**
   * Publish every committed change not yet published here. Resolves once
   * they are (so a map built after it is at least as new as the latest
   * change committed before the call); rejects when the database cannot
   * be read.
   */
  catchUp(): Promise<void> {
    if (!this.reading) {
      const run = this.readOutbox().finally(() => {
        if (this.reading === run) this.reading = null;
      });
      this.reading = run;
      return run;
    }
    // The read running may have started before the caller's change committed: wait for the next one.
    this.nextRead ??= this.reading
      .catch(() => undefined)
      .then(() => {
        this.nextRead = null;
        return this.catchUp();
      });
    return this.nextRead;
  }

  private async readOutbox(): Promise<void> {
    const sequence = this.bus.sequence;
    // Away longer than the outbox keeps rows: some may be gone, so recompute everything instead.
    if (performance.now() - this.lastRead > OUTBOX_RETENTION_MS / 2) {
      await this.recompute("outbox retention");
      return;
    }
    let rows: { seq: number; event: string }[];
    try {
      rows = await changesAfter(this.db, sequence.applied, REPLAY_MAX + 1);
    } catch (err) {
      this.failed(err);
      throw err;
    }
    this.readOk();
    if (rows.length > REPLAY_MAX) {
      await this.recompute("outbox backlog");
      return;
    }
    for (const row of rows) {
      let event: ControlEvent;
      try {
        event = Stored.parse(JSON.parse(row.event));
      } catch (err) {
        this.stats.invalid++;
        this.log.error({ err, seq: row.seq }, "unreadable change in the outbox; recomputing every map");
        await this.recompute("unreadable change");
        return;
      }
      if (event.type === "signal") continue;
      if (this.bus.publish({ ...event, seq: row.seq, origin: "outbox" })) this.stats.replayed++;
    }
    // Numbers below the newest committed one that never came were rolled back (outbox.ts).
    if (rows.length) sequence.advanceTo(rows.at(-1)!.seq);
    if (sequence.gapped) this.gapSoon();
  }

  /** Recompute every map here, taking every change committed so far as applied. */
  private async recompute(why: string): Promise<void> {
    try {
      const latest = await latestChange(this.db);
      this.readOk();
      this.bus.sequence.advanceTo(latest);
    } catch (err) {
      // Recompute all the same: maps are rebuilt from the tables; the outbox is read again at the next check.
      this.failed(err);
    }
    this.stats.recomputes++;
    this.bus.publish({ type: "settings", origin: why });
  }

  private gapSoon(): void {
    if (this.gapTimer || this.closed) return;
    this.gapTimer = setTimeout(() => {
      this.gapTimer = null;
      if (this.bus.sequence.gapped) this.catchUp().catch(() => undefined);
    }, GAP_WAIT_MS);
    this.gapTimer.unref();
  }

  /** The periodic check: read the outbox, make the LISTEN connection answer, prune now and then. */
  private async tick(): Promise<void> {
    await this.catchUp().catch(() => undefined);
    const client = this.client;
    if (client) {
      const ms = this.opts.checkMs ?? CHECK_MS;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const answered = await Promise.race([
        this.onListener(client, "SELECT 1").then(
          () => true,
          () => false,
        ),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms))),
      ]).finally(() => clearTimeout(timer));
      if (!answered && this.client === client) {
        this.log.warn("event bridge connection does not answer; reconnecting");
        this.reconnectSoon(client);
      }
    }
    if (++this.ticks % PRUNE_EVERY === 0) {
      await pruneChanges(this.db).catch((err: unknown) => this.log.debug({ err }, "outbox pruning failed"));
    }
  }

  private readOk(): void {
    if (this.lastError !== null) this.log.info("outbox readable again");
    this.lastError = null;
    this.lastRead = performance.now();
  }

  private failed(err: unknown): void {
    if (this.lastError === null) this.log.warn({ err }, "cannot read the outbox");
    this.lastError = publicDatabaseError(err);
  }

  health(): BridgeHealth {
    return {
      listening: this.client !== null,
      seq: this.bus.sequence.applied,
      checked_s_ago: Math.round((performance.now() - this.lastRead) / 100) / 10,
      ...(this.lastError !== null ? { error: this.lastError } : {}),
    };
  }

  private forward(e: ControlEvent): void {
    const payloads: string[] = [];
    if (e.type === "nodes") {
      for (let i = 0; i < e.ids.length; i += IDS_PER_NOTIFY) {
        payloads.push(
          JSON.stringify({
            type: "nodes",
            ids: e.ids.slice(i, i + IDS_PER_NOTIFY),
            ...(e.attrsOnly ? { attrsOnly: true } : {}),
            origin: this.origin,
          }),
        );
      }
    } else if (e.type === "signal") {
      const { to, from, sealed } = e;
      payloads.push(JSON.stringify({ type: "signal", to, from, sealed, origin: this.origin }));
    } else {
      payloads.push(JSON.stringify({ type: e.type, origin: this.origin }));
    }
    for (const p of payloads) {
      // Without the LISTEN connection, through the pool: other replicas still hear it.
      const sent = this.client
        ? this.onListener(this.client, "SELECT pg_notify($1, $2)", [CHANNEL, p])
        : this.db.prisma.$queryRawUnsafe(`SELECT 1 AS sent FROM (SELECT pg_notify($1, $2)) n`, CHANNEL, p);
      sent.then(
        () => this.stats.sent++,
        (err: unknown) =>
          this.log.warn({ err, event: e.type }, "NOTIFY failed: change not sent to other processes"),
      );
    }
  }

  private onNotification(payload: string | undefined): void {
    let event: z.infer<typeof Wire>;
    try {
      event = Wire.parse(JSON.parse(payload ?? ""));
    } catch {
      this.stats.invalid++;
      return;
    }
    if (event.type === "seq") {
      if (event.seq > this.bus.sequence.applied) this.catchUp().catch(() => undefined);
      return;
    }
    const numbered = event.type !== "signal" && event.seq !== undefined;
    if (!numbered && event.origin === this.origin) return;
    this.stats.received++;
    this.bus.publish(event);
  }

  private onListener(client: pg.Client, sql: string, params: unknown[] = []): Promise<unknown> {
    const run = this.queue.then(() => client.query(sql, params));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Tests: stop hearing notifications while the connection stays up, as a connection that died silently would. */
  async deafen(): Promise<void> {
    if (this.client) await this.onListener(this.client, `UNLISTEN ${CHANNEL}`);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe();
    if (this.bus.sequence.onGap) this.bus.sequence.onGap = null;
    for (const t of [this.timer, this.reconnectTimer, this.gapTimer]) if (t) clearTimeout(t);
    this.timer = this.reconnectTimer = this.gapTimer = null;
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => undefined);
    await Promise.allSettled([this.reading, this.nextRead, this.ticking]);
  }
}
