import { z } from "zod";

/**
 * On PostgreSQL, how this replica follows the others' changes: whether its
 * LISTEN connection is up, the outbox number up to which it has applied
 * every change, how long ago it last read the outbox, and why that read
 * fails while it does.
 */
export const EventsHealth = z.object({
  listening: z.boolean(),
  seq: z.number().int().nonnegative(),
  checked_s_ago: z.number().nonnegative(),
  error: z.string().optional(),
});

/**
 * Health of the database as reported by `GET /api/health`. Over HTTP (which
 * answers anyone) `error` only says the database is unavailable; the
 * server's own callers get the database's message without connection
 * details (hosts, ports, users, URLs). The server's log keeps it whole.
 */
export const DatabaseHealth = z.object({
  provider: z.enum(["sqlite", "postgresql"]),
  status: z.enum(["ok", "error"]),
  latency_ms: z.number().nonnegative().optional(),
  error: z.string().optional(),
  /**
   * Whether changes can be saved: "full" (the disk is) or "read_only" while
   * they cannot; reads still work then. On SQLite from the data directory's
   * filesystem; on PostgreSQL from the last minute's refused writes.
   */
  writes: z.enum(["ok", "full", "read_only"]).optional(),
  events: EventsHealth.optional(),
});

/** Health of the relay that this process embeds (or `external` when it runs apart). */
export const RelayHealth = z.object({
  status: z.enum(["listening", "stopped", "external"]),
  path: z.string(),
  clients: z.number().int().nonnegative(),
  server_key: z.string().optional(),
  verify_clients: z.boolean().optional(),
  stun_port: z.number().int().min(0).max(65535).optional(),
  mesh: z.object({ peers: z.number().int(), connected: z.number().int() }).optional(),
});

/** Body of `GET /api/health`: 200 with status ok, or 503 with status degraded. */
export const HealthResponse = z.object({
  status: z.enum(["ok", "degraded"]),
  version: z.string(),
  uptime_s: z.number().nonnegative(),
  database: DatabaseHealth,
  relay: RelayHealth,
});
export type HealthResponse = z.infer<typeof HealthResponse>;
