import { z } from "zod";

/** Health of the database as reported by `GET /api/health`. */
export const DatabaseHealth = z.object({
  provider: z.enum(["sqlite", "postgresql"]),
  status: z.enum(["ok", "error"]),
  latency_ms: z.number().nonnegative().optional(),
  error: z.string().optional(),
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
