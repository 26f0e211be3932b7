import { PolicyError } from "@trellis/policy";
import { databaseWriteFault, isDatabaseUnavailable, noteWriteFault } from "./db-errors";

const BRAND = Symbol.for("trellis.ControlError");

type Issue = { path: string; message: string; line?: number; column?: number };

/**
 * An error the HTTP API reports to its caller: a stable code, an HTTP status and
 * a message fit to show a user. Anything else is a bug and becomes a 500.
 */
export class ControlError extends Error {
  override readonly name = "ControlError";
  readonly [BRAND] = true;
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    readonly issues?: Issue[],
    /** Seconds after which a retry may succeed: answered as `Retry-After` (busy, unavailable). */
    readonly retryAfterSec?: number,
  ) {
    super(message);
  }

  /**
   * Recognise a ControlError across module copies: the server process loads this
   * module once and the Next.js bundle once more, so `instanceof` is not enough.
   */
  static is(err: unknown): err is ControlError {
    return typeof err === "object" && err !== null && (err as { [BRAND]?: unknown })[BRAND] === true;
  }

  /**
   * What the API reports for an error, or null for a bug (a 500 without
   * internals). A policy the engine refuses is the caller's input: a 400 with
   * every issue at its line and column. A database that cannot be reached
   * is nobody's bug: a 503 the caller may retry.
   */
  static of(err: unknown): ControlError | null {
    if (ControlError.is(err)) return err;
    if (isDatabaseUnavailable(err)) return databaseUnavailable();
    const fault = databaseWriteFault(err);
    if (fault) {
      noteWriteFault(fault);
      return databaseWriteRefused(fault);
    }
    if (PolicyError.is(err)) {
      return new ControlError(
        err.code,
        400,
        err.message,
        err.problems.map((i) => ({
          path: i.path,
          message: i.message,
          ...(i.line !== undefined ? { line: i.line, column: i.column } : {}),
        })),
      );
    }
    return null;
  }
}

/**
 * The answer while the database refuses writes (its disk is full, or it or
 * its filesystem is read-only): nothing was changed, reads still work, and
 * an operator must act before a retry can succeed.
 */
export function databaseWriteRefused(kind: "full" | "read_only"): ControlError {
  return kind === "full"
    ? new ControlError(
        "database_full",
        503,
        "the server's disk is full: nothing was changed, and no change can be saved until space is freed",
        undefined,
        30,
      )
    : new ControlError(
        "database_read_only",
        503,
        "the database is read-only: nothing was changed, and no change can be saved until it is writable again",
        undefined,
        30,
      );
}

/** The answer while the database cannot be reached (db-errors.ts tells which errors mean that). */
export function databaseUnavailable(): ControlError {
  return new ControlError(
    "database_unavailable",
    503,
    "the database is unavailable; try again shortly",
    undefined,
    1,
  );
}
