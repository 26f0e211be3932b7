// verify-clients for a relay running apart from the control server: it asks
// the control server over HTTP (`POST /api/v1/relay/verify`) which node keys
// may use it. The relay needs no database and no part of the control plane.
import { encodeKey, RelayVerifyResponse, RELAY_VERIFY_MAX_KEYS } from "@trellis/proto/node";
import type { ClientVerifier } from "./server";

export class VerifyError extends Error {
  override readonly name = "VerifyError";
}

/**
 * A verifier asking the control server at `controlUrl`. An unreachable or
 * failing control server makes it throw: a login is then refused (fail
 * closed) and a revalidation keeps who is connected.
 */
export function httpVerifier(
  controlUrl: string,
  opts: { fetch?: typeof fetch; timeoutMs?: number } = {},
): ClientVerifier {
  const url = new URL("/api/v1/relay/verify", controlUrl).toString();
  const fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
  return async (keys) => {
    const out: boolean[] = [];
    for (let i = 0; i < keys.length; i += RELAY_VERIFY_MAX_KEYS) {
      const batch = keys.slice(i, i + RELAY_VERIFY_MAX_KEYS);
      let res: Response;
      try {
        res = await fetchFn(url, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ nodeKeys: batch.map((k) => encodeKey("nodekey", k)) }),
          signal: AbortSignal.timeout(opts.timeoutMs ?? 5_000),
        });
      } catch (err) {
        throw new VerifyError(
          `control server ${url} unreachable: ${err instanceof Error ? err.message : String(err)}`,
        );
      }
      if (!res.ok) throw new VerifyError(`control server ${url} answered ${res.status}`);
      const parsed = RelayVerifyResponse.safeParse(await res.json().catch(() => null));
      if (!parsed.success || parsed.data.allowed.length !== batch.length) {
        throw new VerifyError(`control server ${url} gave an answer that is not one per key`);
      }
      out.push(...parsed.data.allowed);
    }
    return out;
  };
}
