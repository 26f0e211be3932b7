// Local-account login: email and password checked against the scrypt hash,
// throttled by LoginRateLimiter (each attempt counted before the hash).
// Unknown accounts cost the same KDF work as known ones, so timing does not
// reveal which emails exist.
import type { Database } from "@trellis/db";
import { ControlError } from "../errors";
import { hashPassword, verifyPassword } from "../password";
import type { LoginRateLimiter } from "./ratelimit";

let dummyHash: Promise<string> | null = null;

export interface LoginResult {
  id: string;
  email: string;
  name: string;
  role: string;
}

/**
 * Check a password login. Returns the user, or throws ControlError:
 * 401 `bad_credentials` (one message for unknown email and wrong password),
 * 429 `rate_limited` with the wait in the message.
 */
export async function verifyLogin(
  db: Database,
  limiter: LoginRateLimiter,
  email: unknown,
  password: unknown,
  address: string,
): Promise<LoginResult> {
  if (
    typeof email !== "string" ||
    typeof password !== "string" ||
    email.length > 254 ||
    password.length > 256
  ) {
    throw new ControlError("bad_credentials", 401, "wrong email or password");
  }
  const account = email.trim().toLowerCase();
  // Counted before the KDF, in the same synchronous step as the check: a
  // burst of parallel guesses is limited like the same guesses in a row.
  const startedAt = Date.now();
  const wait = limiter.begin(account, address, startedAt);
  if (wait > 0) {
    throw new ControlError(
      "rate_limited",
      429,
      `too many failed logins; try again in ${Math.ceil(wait / 60_000)} minute(s)`,
    );
  }
  const user = await db.prisma.user.findUnique({ where: { email: account } });
  dummyHash ??= hashPassword("trellis-dummy-password-for-timing");
  const ok = await verifyPassword(password, user?.passwordHash ?? (await dummyHash));
  if (!user || !user.passwordHash || !ok) {
    throw new ControlError("bad_credentials", 401, "wrong email or password");
  }
  limiter.recordSuccess(account, address, startedAt);
  return { id: user.id, email: user.email, name: user.name, role: user.role };
}
