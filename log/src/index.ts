import { pino, type DestinationStream, type Logger, type LevelWithSilent } from "pino";

export type { Logger } from "pino";

const LEVELS: readonly LevelWithSilent[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

/**
 * Keys whose values are secrets, compared without letter case: credentials,
 * keys, session ids. Public keys are named nodeKey/publicKey and stay.
 */
const SECRET_KEYS = new Set(
  [
    "password",
    "passwordHash",
    "token",
    "accessToken",
    "refreshToken",
    "idToken",
    "privateKey",
    "authorization",
    "cookie",
    "set-cookie",
    "preAuthKey",
    "secret",
    "clientSecret",
    "authSecret",
    "meshKey",
    "sid",
    "signature",
  ].map((k) => k.toLowerCase()),
);

const CENSOR = "[redacted]";
const MAX_DEPTH = 8;

function isPlain(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * `value` with every secret key's value replaced at any depth (pino's own
 * redaction paths reach one level, and a secret nested in a request body or
 * a config object would otherwise be written out). Copies only what it
 * changes; objects nested deeper than eight levels are cut off; Errors and
 * other class instances are left to their serializers.
 */
export function redactSecrets<T>(value: T, depth = 0): T {
  // Deeper than anything Trellis logs: cut off rather than written unchecked.
  if (depth > MAX_DEPTH) return (typeof value === "object" && value !== null ? "[truncated]" : value) as T;
  if (Array.isArray(value)) {
    let out: unknown[] | null = null;
    value.forEach((item, i) => {
      const r = redactSecrets(item, depth + 1);
      if (r !== item) (out ??= [...value])[i] = r;
    });
    return (out ?? value) as T;
  }
  if (!isPlain(value)) return value;
  let out: Record<string, unknown> | null = null;
  for (const [k, v] of Object.entries(value)) {
    const r =
      SECRET_KEYS.has(k.toLowerCase()) && v !== undefined && v !== null
        ? CENSOR
        : redactSecrets(v, depth + 1);
    if (r !== v) (out ??= { ...value })[k] = r;
  }
  return (out ?? value) as T;
}

/**
 * The one logger of Trellis: structured JSON lines on stderr, quiet by default
 * (`warn`). `TRELLIS_LOG_LEVEL` raises or lowers it. Secrets are redacted by
 * key name wherever they appear in a logged object, nested objects included.
 */
export function createLogger(
  component: string,
  level = process.env.TRELLIS_LOG_LEVEL,
  destination: DestinationStream = pino.destination(2),
): Logger {
  const chosen = (level ?? "warn").toLowerCase() as LevelWithSilent;
  return pino(
    {
      name: component,
      level: LEVELS.includes(chosen) ? chosen : "warn",
      formatters: { log: (obj) => redactSecrets(obj) },
      base: { component },
    },
    destination,
  );
}
