import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * The secret that encrypts session cookies: TRELLIS_AUTH_SECRET when set
 * (replicas must share one), else `auth.secret` in the data directory,
 * created on first start with mode 0600.
 */
export function loadOrCreateAuthSecret(configured: string | null, dataDir: string): string {
  if (configured) return configured;
  const file = join(dataDir, "auth.secret");
  try {
    const text = readFileSync(file, "utf8").trim();
    if (text.length >= 32) return text;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  mkdirSync(dataDir, { recursive: true });
  const secret = randomBytes(32).toString("base64url");
  writeFileSync(file, secret + "\n", { mode: 0o600, flag: "w" });
  return secret;
}
