/** A database URL or configuration that Trellis cannot use. */
export class DatabaseConfigError extends Error {
  override readonly name = "DatabaseConfigError";
}

/** Applying migrations failed; `migration` names the one that failed, when known. */
export class MigrationError extends Error {
  override readonly name = "MigrationError";
  constructor(
    message: string,
    readonly provider: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
