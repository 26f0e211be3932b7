// Telling a database that is away (down, restarting, refusing or dropping
// connections) from a bug, across the shapes its errors take: Prisma's
// known errors (P1001 …), driver adapter errors inside them
// (meta.driverAdapterError.cause), and pg's own errors, which Prisma passes
// through unwrapped when a connection dies under a query ("Connection
// terminated unexpectedly"). No imports: the Next.js bundle maps errors too.

/** Prisma's codes for a database it cannot reach or lost, or a pool it could not get a connection from. */
const PRISMA_CODES = new Set(["P1001", "P1002", "P1008", "P1017", "P2024"]);
/** Driver adapter error kinds that mean the same. */
const ADAPTER_KINDS = new Set([
  "DatabaseNotReachable",
  "ConnectionClosed",
  "SocketTimeout",
  "TooManyConnections",
]);
/** Socket errors of node:net while connecting or talking to the server. */
const SOCKET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
]);
/**
 * PostgreSQL SQLSTATEs: class 08 (connection exception), the server
 * shutting down or starting up (57P01–57P03), out of connections (53300).
 */
function serverStateUnavailable(code: string): boolean {
  return (
    code.startsWith("08") || code === "57P01" || code === "57P02" || code === "57P03" || code === "53300"
  );
}
/** pg's messages for a connection that ended under it (they carry no code). */
const PG_CONNECTION_LOST =
  /^(Connection terminated|Client has encountered a connection error|Connection terminated unexpectedly)/;

type Loose = { code?: unknown; message?: unknown; meta?: unknown; cause?: unknown; kind?: unknown };

function adapterCause(err: Loose): Loose | null {
  const meta = err.meta as { driverAdapterError?: { cause?: Loose } } | undefined;
  return meta?.driverAdapterError?.cause ?? null;
}

/** True when `err` says the database cannot be reached now, as opposed to a query or a program that is wrong. */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e = err as Loose | undefined, depth = 0; e && typeof e === "object" && depth < 5; depth++) {
    const code = typeof e.code === "string" ? e.code : "";
    if (
      PRISMA_CODES.has(code) ||
      SOCKET_CODES.has(code) ||
      (/^[0-9A-Z]{5}$/.test(code) && serverStateUnavailable(code))
    ) {
      return true;
    }
    const cause = adapterCause(e);
    if (cause) {
      if (typeof cause.kind === "string" && ADAPTER_KINDS.has(cause.kind)) return true;
      const original = (cause as { originalCode?: unknown; code?: unknown }).originalCode ?? cause.code;
      if (typeof original === "string" && serverStateUnavailable(original)) return true;
    }
    if (typeof e.message === "string" && PG_CONNECTION_LOST.test(e.message)) return true;
    e = e.cause as Loose | undefined;
  }
  return false;
}

/** SQLite's and PostgreSQL's codes for a write the disk or the database refuses. */
const FULL_CODES = new Set(["SQLITE_FULL", "53100"]);
const FULL_TEXT = /database or disk is full|No space left on device|could not extend file/i;
const READ_ONLY_TEXT = /attempt to write a readonly database|read-only transaction|read-only file ?system/i;

/**
 * "full" when `err` says the database's disk is full, "read_only" when the
 * database (or its filesystem) refuses writes, null otherwise: writes fail
 * until an operator acts, while reads still work.
 */
export function databaseWriteFault(err: unknown): "full" | "read_only" | null {
  for (let e = err as Loose | undefined, depth = 0; e && typeof e === "object" && depth < 5; depth++) {
    const cause = adapterCause(e) as (Loose & { originalCode?: unknown }) | null;
    for (const x of [e, cause, e.cause as (Loose & { originalCode?: unknown }) | undefined]) {
      if (!x || typeof x !== "object") continue;
      const code = String((x as { originalCode?: unknown }).originalCode ?? x.code ?? "");
      const text = typeof x.message === "string" ? x.message : "";
      if (FULL_CODES.has(code) || FULL_TEXT.test(text)) return "full";
      if (
        code.startsWith("SQLITE_READONLY") ||
        code === "25006" ||
        code === "EROFS" ||
        READ_ONLY_TEXT.test(text)
      )
        return "read_only";
    }
    e = e.cause as Loose | undefined;
  }
  return null;
}

/**
 * Writes refused lately, by kind and time: the API's error mapping notes them
 * (errors.ts) and health reports them. On globalThis: the server process and
 * the Next.js bundle each load this module, and share the process.
 */
const FAULTS = Symbol.for("trellis.databaseWriteFaults");
type FaultLog = { kind: "full" | "read_only"; at: number } | null;
const faults = globalThis as unknown as { [FAULTS]?: FaultLog };

export function noteWriteFault(kind: "full" | "read_only", now = Date.now()): void {
  faults[FAULTS] = { kind, at: now };
}

/** The write fault noted within `withinMs`, if any. */
export function recentWriteFault(withinMs = 60_000, now = Date.now()): "full" | "read_only" | null {
  const f = faults[FAULTS];
  return f && now - f.at <= withinMs ? f.kind : null;
}

export function clearWriteFault(): void {
  faults[FAULTS] = null;
}

/**
 * The text of a database error, fit for anyone to read: the line that says
 * what happened (Prisma's messages start with blank lines and the call
 * site; raw queries wrap the driver's message), with URLs, user names, host
 * names, addresses and ports taken out, and the most telling code in front
 * (PostgreSQL's SQLSTATE, the socket's, or Prisma's). The log keeps the
 * whole error for operators.
 */
export function publicDatabaseError(err: unknown): string {
  const e = (typeof err === "object" && err !== null ? err : { message: String(err) }) as Loose;
  const cause = adapterCause(e) as (Loose & { originalCode?: unknown; originalMessage?: unknown }) | null;
  const message = typeof e.message === "string" ? e.message : String(err);
  const lines = message
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  // "Invalid `…` invocation in <file> … <source lines> … <the message>": the last line says it.
  let text = (/invocation/.test(lines[0] ?? "") ? lines.at(-1) : lines[0]) ?? "";
  text = /Message: `(.*)`/.exec(text)?.[1] ?? text;
  // The server's own words, when the driver kept them.
  if (typeof cause?.originalMessage === "string") text = cause.originalMessage;
  if (!text) {
    const kind = typeof cause?.kind === "string" ? cause.kind : "";
    text = ADAPTER_TEXT[kind] ?? kind;
  }
  // P2010 only says "a raw query failed": the driver's code, if any, says more.
  const code = [cause?.originalCode, e.code === "P2010" ? undefined : e.code].find(
    (c): c is string => typeof c === "string" && c !== "N/A",
  );
  const clean = redact(text || "unknown database error").slice(0, 300);
  return code && !clean.startsWith(code) ? `${code}: ${clean}` : clean;
}

const ADAPTER_TEXT: Record<string, string> = {
  DatabaseNotReachable: "can't reach the database server",
  ConnectionClosed: "the database server closed the connection",
  SocketTimeout: "the connection to the database server timed out",
  TooManyConnections: "the database server has too many connections",
};

/** Take connection details out of a message: URLs, user@host, addresses and ports, quoted names after "at"/"for user". */
function redact(text: string): string {
  return text
    .replace(/\b[a-z][a-z0-9+.-]*:\/\/\S+/gi, "<url>")
    .replace(/\b[^\s@"'`]+@[^\s"'`]+/g, "<user>@<host>")
    .replace(/\[[0-9a-f:.]+\](:\d+)?/gi, "<host>")
    .replace(/\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b/g, "<host>")
    .replace(/\b(at|to|host|server) (?!<host>)[a-z0-9.-]+\.[a-z]{2,}(:\d+)?/gi, "$1 <host>")
    .replace(/\b(at|to|host) [a-z0-9.-]+:\d+/gi, "$1 <host>")
    .replace(/(user|role|database) "[^"]*"/gi, '$1 "…"');
}
