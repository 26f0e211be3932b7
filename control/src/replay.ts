// Replays across replicas. Each NodeAuthenticator remembers the MACs it has
// accepted, which refuses a replay sent to the same process; with several
// replicas on one PostgreSQL database, a request captured on its way to one
// could be replayed to another within its ±60 s window (re-posting stale
// endpoints, duplicating connection logs, opening a map stream). There, every
// accepted request also claims its MAC in the database, whose primary key
// lets exactly one replica have it. SQLite serves one process, whose own
// memory is enough, so it skips the round trip.
import type { Database } from "@trellis/db";
import type { Logger } from "@trellis/log";
import { ControlError } from "./errors";
import type { VerifiedRequest } from "./node-auth";

/** How often each replica deletes claims whose requests left the window. */
export const PRUNE_INTERVAL_MS = 60_000;

export class SharedReplayGuard {
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
  ) {
    this.timer = setInterval(() => {
      this.prune().catch((err: unknown) => this.log.warn({ err }, "pruning used signatures failed"));
    }, PRUNE_INTERVAL_MS);
    this.timer.unref();
  }

  /** Throws 401 `replayed_request` if any replica accepted this request before. */
  async claim(req: VerifiedRequest): Promise<void> {
    // Prisma's createMany has no skipDuplicates on the SQLite client the code types against.
    const count = await this.db.prisma.$executeRaw`
      INSERT INTO "UsedSignature" ("mac", "expiresAt") VALUES (${req.mac}, ${new Date(req.until * 1000)})
      ON CONFLICT DO NOTHING`;
    if (count === 0) throw new ControlError("replayed_request", 401, "this signed request was already used");
  }

  /**
   * Delete claims whose requests now fail the clock-skew check anyway, by
   * the database's clock (replicas' clocks may differ); returns how many.
   */
  async prune(): Promise<number> {
    return this.db.prisma.$executeRaw`
      DELETE FROM "UsedSignature" WHERE "expiresAt" <= (now() AT TIME ZONE 'UTC')`;
  }

  close(): void {
    clearInterval(this.timer);
  }
}
