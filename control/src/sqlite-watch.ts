// On SQLite the server is the one process that serves the database, but not
// its only writer: trellis-server, the admin CLI (cli/), approves machines,
// changes users and saves policies straight into the file. On PostgreSQL its
// changes reach every replica through the outbox like any other (outbox.ts);
// SQLite has no outbox, so the server asks the file instead. SQLite's
// `PRAGMA data_version` changes, on a connection, when another connection
// has committed, and never for that connection's own commits; the server
// writes through one connection (@prisma/adapter-better-sqlite3 holds one),
// so a change of the number means that someone else wrote.
//
// What they wrote is not known, so every map is recomputed, as a PostgreSQL
// replica does after changes it missed (pg-bridge.ts): the nodes, the policy
// and the settings are all announced as changed. Writes from the shell are
// rare; the check is a pragma read once a second.
import type { Database } from "@trellis/db";
import type { Logger } from "@trellis/log";
import type { EventBus } from "./events";

/** How often the server looks for commits by other processes. */
export const EXTERNAL_CHECK_MS = 1000;

/** The origin of the events announcing another process's writes. */
export const EXTERNAL_ORIGIN = "another process";

export interface SqliteWatchOptions {
  /** How often to check (EXTERNAL_CHECK_MS by default). */
  checkMs?: number;
}

async function dataVersion(db: Database): Promise<bigint> {
  const rows = await db.prisma.$queryRawUnsafe<{ data_version: bigint | number }[]>("PRAGMA data_version");
  return BigInt(rows[0]!.data_version);
}

/** Announces on `bus` every commit made to the SQLite file by another connection. */
export class SqliteWriteWatch {
  private timer: ReturnType<typeof setInterval> | null = null;
  private checking = false;
  /** Checks that found another process's commit (for tests). */
  detected = 0;

  private constructor(
    private readonly db: Database,
    private readonly bus: EventBus,
    private readonly log: Logger,
    private version: bigint,
  ) {}

  static async start(
    db: Database,
    bus: EventBus,
    log: Logger,
    opts: SqliteWatchOptions = {},
  ): Promise<SqliteWriteWatch> {
    const watch = new SqliteWriteWatch(db, bus, log, await dataVersion(db));
    watch.timer = setInterval(() => void watch.check(), opts.checkMs ?? EXTERNAL_CHECK_MS);
    watch.timer.unref();
    return watch;
  }

  /** Compare the file's version with the last one seen; announce a change. */
  async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      const now = await dataVersion(this.db);
      if (now === this.version) return;
      this.version = now;
      this.detected++;
      this.log.info("the database was changed by another process; recomputing every map");
      // Nodes first, then the policy: a policy event alone would promise that no node changed.
      this.bus.publish({ type: "nodes", ids: [], origin: EXTERNAL_ORIGIN });
      this.bus.publish({ type: "policy", origin: EXTERNAL_ORIGIN });
      this.bus.publish({ type: "settings", origin: EXTERNAL_ORIGIN });
    } catch (err) {
      // A busy or closing database: the next check reads the version again.
      this.log.warn({ err }, "could not check the database for other writers");
    } finally {
      this.checking = false;
    }
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
