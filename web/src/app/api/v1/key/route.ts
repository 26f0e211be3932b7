import { getRuntime, handle } from "@/lib/api";

export const dynamic = "force-dynamic";

/** The control server's X25519 public key, from which nodes derive their request MAC key. */
export function GET(): Promise<Response> {
  return handle("GET /api/v1/key", async () => Response.json(getRuntime().controlKey()));
}
