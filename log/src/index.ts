import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger } from "pino";

const LEVELS: readonly LevelWithSilent[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

/**
 * The one logger of Trellis: structured JSON lines on stderr, quiet by default
 * (`warn`). `TRELLIS_LOG_LEVEL` raises or lowers it. Secrets are redacted by
 * key name wherever they appear in a logged object.
 */
export function createLogger(component: string, level = process.env.TRELLIS_LOG_LEVEL): Logger {
  const chosen = (level ?? "warn").toLowerCase() as LevelWithSilent;
  return pino(
    {
      name: component,
      level: LEVELS.includes(chosen) ? chosen : "warn",
      redact: {
        paths: [
          "password",
          "*.password",
          "token",
          "*.token",
          "privateKey",
          "*.privateKey",
          "authorization",
          "*.authorization",
          "cookie",
          "*.cookie",
        ],
        censor: "[redacted]",
      },
      base: { component },
    },
    pino.destination(2),
  );
}
