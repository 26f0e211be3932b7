// Local-account login: email and password checked against the scrypt hash,
// throttled by LoginThrottle (each attempt checked and counted before the
// hash). Unknown accounts cost the same KDF work and the same throttle work
// as known ones, so neither timing nor the throttle reveals which emails
// exist.
import type { Database } from "@trellis/db";
import { waitWords } from "@trellis/proto/admin";
import { ControlError } from "../errors";
import { hashPassword, verifyPassword } from "../password";
import type { LoginThrottle } from "./throttle";

let dummyHash: Promise<string> | null = null;

export interface LoginResult {
  id: string;
  email: string;
  name: string;
  role: string;
}

/** Where a refused login leaves its caller: failures left before delays start, or the wait. */
export interface LoginThrottleState {
  /** Failed attempts left before sign-in is slowed down (0 once it is). */
  remaining: number;
  /** How long to wait before the next attempt (0: at once). */
  retryAfterMs: number;
}

/** A refused login, with the throttle's state for the login page. */
export class LoginError extends ControlError {
  constructor(
    code: "bad_credentials" | "rate_limited",
    status: number,
    message: string,
    readonly throttle: LoginThrottleState | null,
  ) {
    super(code, status, message);
  }

  /** The throttle state of a login error (across module copies, like ControlError.is); null for others. */
  static throttleOf(err: unknown): LoginThrottleState | null {
    if (!ControlError.is(err)) return null;
    const t = (err as { throttle?: unknown }).throttle;
    if (typeof t !== "object" || t === null) return null;
    const { remaining, retryAfterMs } = t as Record<string, unknown>;
    return typeof remaining === "number" && typeof retryAfterMs === "number"
      ? { remaining, retryAfterMs }
      : null;
  }
}

const WRONG = "wrong email or password";

/**
 * Check a password login. Returns the user, or throws LoginError: 401
 * `bad_credentials` (one message for unknown email and wrong password) with
 * the failures left before a delay or the delay this failure started, 429
 * `rate_limited` with the wait.
 */
export async function verifyLogin(
  db: Database,
  throttle: LoginThrottle,
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
    throw new LoginError("bad_credentials", 401, WRONG, null);
  }
  const account = email.trim().toLowerCase();
  // Checked and counted before the KDF, in one transaction: a burst of
  // parallel guesses is limited like the same guesses in a row.
  const attempt = await throttle.begin(account, address);
  if (!attempt.allowed) {
    throw new LoginError(
      "rate_limited",
      429,
      `too many failed sign-ins; try again in ${waitWords(attempt.retryAfterMs)}`,
      { remaining: 0, retryAfterMs: attempt.retryAfterMs },
    );
  }
  const user = await db.prisma.user.findUnique({ where: { email: account } });
  dummyHash ??= hashPassword("trellis-dummy-password-for-timing");
  const ok = await verifyPassword(password, user?.passwordHash ?? (await dummyHash));
  if (!user || !user.passwordHash || !ok) {
    throttle.failed(attempt, user?.id ?? null);
    const { remaining, waitMs } = attempt.ifFailed;
    throw new LoginError(
      "bad_credentials",
      401,
      waitMs > 0
        ? `${WRONG}; wait ${waitWords(waitMs)} before trying again`
        : `${WRONG}; ${remaining} attempt${remaining === 1 ? "" : "s"} left before sign-in slows down`,
      { remaining, retryAfterMs: waitMs },
    );
  }
  await throttle.succeeded(attempt);
  return { id: user.id, email: user.email, name: user.name, role: user.role };
}
