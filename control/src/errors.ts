const BRAND = Symbol.for("trellis.ControlError");

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
    readonly issues?: { path: string; message: string; line?: number; column?: number }[],
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
}
