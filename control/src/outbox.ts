// The outbox of tailnet changes (PostgreSQL). A transaction that changes what
// maps contain — nodes joining, leaving or changing keys, tags, routes or
// approval; the policy; settings; users' roles — appends its change to the
// `Change` table as its last statement, and NOTIFYs it in the same
// statement. PostgreSQL delivers the notification at commit, and only if the
// transaction commits, to every listening replica whatever happened to the
// writer's own LISTEN connection; a replica that was not listening then
// finds the change in the table by its number (pg-bridge.ts).
//
// Numbers follow commit order: the insert first takes a transaction-scoped
// advisory lock, held until commit, and only then draws its number. So when
// a replica sees change n committed, every change below n has committed or
// rolled back, and a number it never sees is a rollback, not a change still
// on its way. The lock serialises only the last statement and the commit of
// changing transactions, which are a few per second, not the hot path
// (online state and endpoints stay plain NOTIFY: see docs/decisions.md).
//
// SQLite is one process: no outbox, the event bus is the whole story.
import type { Database } from "@trellis/db";
import type { MapChange } from "./events";

/** The PostgreSQL channel that carries tailnet changes between server processes. */
export const CHANNEL = "trellis_events";
/** The advisory lock that orders the outbox (an arbitrary constant, "TRLS" in ASCII). */
export const OUTBOX_LOCK = 0x54524c53;
/** NOTIFY payloads must stay under 8,000 bytes; a larger change is announced by its number only. */
const MAX_NOTIFY_EVENT = 7_000;
/** Node ids in one notification (pg-bridge.ts splits plain node events to this size). */
export const IDS_PER_NOTIFY = 100;
/** How long rows are kept: a replica away longer recomputes everything instead of replaying. */
export const OUTBOX_RETENTION_MS = 3_600_000;

type Tx = Pick<Parameters<Parameters<Database["prisma"]["$transaction"]>[0]>[0], "$queryRawUnsafe">;

/**
 * Append `event` to the outbox inside the caller's transaction (its last
 * statement, so that the lock is held only for the commit) and return it as
 * the writer publishes it after the commit: numbered on PostgreSQL, as it is
 * on SQLite. Signals and attribute changes never come here.
 */
export async function recordChange<E extends MapChange>(db: Database, tx: Tx, event: E): Promise<E> {
  if (db.target.provider !== "postgresql") return event;
  const { origin: _origin, seq: _seq, ...bare } = event;
  const json = JSON.stringify(bare);
  // The payload is the event with its number appended: `{…,"seq":<n>}`.
  const ids = event.type === "nodes" ? event.ids.length : 0;
  const fits = json.length <= MAX_NOTIFY_EVENT && ids <= IDS_PER_NOTIFY;
  const head = fits ? `${json.slice(0, -1)},"seq":` : `{"type":"seq","seq":`;
  const rows = await tx.$queryRawUnsafe<{ seq: string }[]>(
    `WITH l AS (SELECT pg_advisory_xact_lock($1)),
          c AS (INSERT INTO "Change" ("event") SELECT $2 FROM l RETURNING "seq"),
          n AS (SELECT pg_notify($3, $4 || c."seq"::text || '}') FROM c)
     SELECT c."seq"::text AS seq FROM c, n`,
    OUTBOX_LOCK,
    json,
    CHANNEL,
    head,
  );
  return { ...event, seq: Number(rows[0]!.seq) };
}

/** The newest change's number (0 for none). */
export async function latestChange(db: Database): Promise<number> {
  const rows = await db.prisma.$queryRawUnsafe<{ seq: string | null }[]>(
    `SELECT max("seq")::text AS seq FROM "Change"`,
  );
  return Number(rows[0]?.seq ?? 0);
}

/** Changes after `after`, in order, at most `limit`. */
export async function changesAfter(
  db: Database,
  after: number,
  limit: number,
): Promise<{ seq: number; event: string }[]> {
  const rows = await db.prisma.$queryRawUnsafe<{ seq: string; event: string }[]>(
    `SELECT "seq"::text AS seq, "event" FROM "Change" WHERE "seq" > $1::bigint ORDER BY "seq" LIMIT $2`,
    String(after),
    limit,
  );
  return rows.map((r) => ({ seq: Number(r.seq), event: r.event }));
}

/** Delete rows older than the retention, by the database's clock; returns how many. */
export function pruneChanges(db: Database): Promise<number> {
  return db.prisma.$executeRawUnsafe(
    `DELETE FROM "Change" WHERE "at" < LOCALTIMESTAMP - ($1::double precision * interval '1 millisecond')`,
    OUTBOX_RETENTION_MS,
  );
}
