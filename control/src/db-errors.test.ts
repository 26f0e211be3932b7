import { describe, expect, it } from "vitest";
import { databaseWriteFault, isDatabaseUnavailable, publicDatabaseError } from "./db-errors";
import { ControlError } from "./errors";

// The shapes a database outage takes, as Prisma 7 with @prisma/adapter-pg
// reported them when a throw-away PostgreSQL server was stopped under it.
const unreachable = Object.assign(
  new Error(
    "\nInvalid `db.prisma.node.count()` invocation in\n/srv/trellis/control/src/x.ts:16:35\n\n  15 …\n→ 16 …\nCan't reach database server at 10.1.2.3:5432",
  ),
  {
    code: "P1001",
    meta: {
      modelName: "Node",
      driverAdapterError: {
        name: "DriverAdapterError",
        cause: { kind: "DatabaseNotReachable", host: "10.1.2.3", port: 5432 },
      },
    },
  },
);
const rawUnreachable = Object.assign(
  new Error(
    "\nInvalid `prisma.$queryRawUnsafe()` invocation:\n\n\nRaw query failed. Code: `N/A`. Message: `Can't reach database server at db.internal.example:5432`",
  ),
  {
    code: "P2010",
    meta: {
      driverAdapterError: {
        name: "DriverAdapterError",
        cause: { kind: "DatabaseNotReachable", host: "db.internal.example", port: 5432 },
      },
    },
  },
);
const shutdown = Object.assign(new Error("Raw query failed"), {
  code: "P2010",
  meta: {
    driverAdapterError: {
      cause: {
        kind: "postgres",
        originalCode: "57P01",
        originalMessage: "terminating connection due to administrator command",
      },
    },
  },
});

describe("database errors", () => {
  it("tells a database that is away from a bug", () => {
    expect(isDatabaseUnavailable(unreachable)).toBe(true);
    expect(isDatabaseUnavailable(rawUnreachable)).toBe(true);
    expect(isDatabaseUnavailable(shutdown)).toBe(true);
    // pg's own, passed through when a connection dies under a query.
    expect(isDatabaseUnavailable(new Error("Connection terminated unexpectedly"))).toBe(true);
    expect(
      isDatabaseUnavailable(
        Object.assign(new Error("connect ECONNREFUSED 10.1.2.3:5432"), { code: "ECONNREFUSED" }),
      ),
    ).toBe(true);
    expect(isDatabaseUnavailable(new Error("wrapped", { cause: unreachable }))).toBe(true);
    // Not an outage: a constraint, a bug.
    expect(
      isDatabaseUnavailable(Object.assign(new Error("Unique constraint failed"), { code: "P2002" })),
    ).toBe(false);
    expect(isDatabaseUnavailable(new TypeError("x is undefined"))).toBe(false);
    expect(isDatabaseUnavailable(Object.assign(new Error("syntax"), { code: "42601" }))).toBe(false);
  });

  it("is a 503 database_unavailable at the API", () => {
    expect(ControlError.of(unreachable)).toMatchObject({ status: 503, code: "database_unavailable" });
    expect(ControlError.of(new TypeError("bug"))).toBeNull();
  });

  it("says what happened in words, without where the database is", () => {
    expect(publicDatabaseError(unreachable)).toBe("P1001: Can't reach database server at <host>");
    expect(publicDatabaseError(rawUnreachable)).toBe("Can't reach database server at <host>");
    expect(publicDatabaseError(shutdown)).toBe("57P01: terminating connection due to administrator command");
    expect(publicDatabaseError(new Error("Connection terminated unexpectedly"))).toBe(
      "Connection terminated unexpectedly",
    );
    const auth = publicDatabaseError(
      new Error('password authentication failed for user "trellis" at postgres://trellis:s3cret@db:5432/t'),
    );
    expect(auth).not.toMatch(/s3cret|"trellis"|db:5432/);
  });
});

describe("writes the database refuses", () => {
  // SQLite's as the driver adapter reported a full tmpfs (disk-faults.test.ts);
  // PostgreSQL's by SQLSTATE inside the adapter's cause, as it reports them.
  const adapter = (cause: object) =>
    Object.assign(new Error("DriverAdapterError"), { name: "DriverAdapterError", cause });
  const pg = (code: string, message: string) =>
    Object.assign(new Error("x"), {
      code: "P2010",
      meta: {
        driverAdapterError: { cause: { originalCode: code, originalMessage: message, kind: "postgres" } },
      },
    });

  it.each([
    [
      "SQLite: disk full",
      adapter({ originalCode: "SQLITE_FULL", message: "database or disk is full" }),
      "full",
    ],
    [
      "SQLite: read-only",
      adapter({ originalCode: "SQLITE_READONLY", message: "attempt to write a readonly database" }),
      "read_only",
    ],
    [
      "PostgreSQL: disk_full",
      pg("53100", 'could not extend file "base/16384/2619": No space left on device'),
      "full",
    ],
    [
      "PostgreSQL: read-only transaction",
      pg("25006", "cannot execute INSERT in a read-only transaction"),
      "read_only",
    ],
    ["an outage", unreachable, null],
    ["a bug", new TypeError("x is undefined"), null],
  ] as const)("%s", (_, err, kind) => {
    expect(databaseWriteFault(err)).toBe(kind);
    const api = ControlError.of(err);
    if (kind === "full") expect(api).toMatchObject({ code: "database_full", status: 503 });
    if (kind === "read_only") expect(api).toMatchObject({ code: "database_read_only", status: 503 });
  });
});
