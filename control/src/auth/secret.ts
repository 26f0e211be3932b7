import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../config";

/**
 * The secret that encrypts session cookies: TRELLIS_AUTH_SECRET when set
 * (replicas must share one), else `auth.secret` in the data directory,
 * created on first start with mode 0600; a file readable by others is refused.
 */
export function loadOrCreateAuthSecret(configured: string | null, dataDir: string): string {
  if (configured) return configured;
  const file = join(dataDir, "auth.secret");
  try {
    // Like key files: a secret others can read is refused, not used.
    const mode = statSync(file).mode & 0o777;
    if (mode & 0o077) {
      throw new ConfigError(
        `${file} has mode ${mode.toString(8)}; the session secret must be 0600 (chmod 600 it, or delete it to make a new one)`,
      );
    }
    const text = readFileSync(file, "utf8").trim();
    if (text.length >= 32) return text;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const secret = randomBytes(32).toString("base64url");
  writeFileSync(file, secret + "\n", { mode: 0o600, flag: "w" });
  return secret;
}
