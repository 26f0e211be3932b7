import { describe, expect, it } from "vitest";
import { DatabaseConfigError } from "./errors";
import { parseDatabaseUrl } from "./url";

describe("parseDatabaseUrl", () => {
  it.each([
    [
      "file:./data/trellis.db",
      { provider: "sqlite", url: "file:/srv/data/trellis.db", file: "/srv/data/trellis.db" },
    ],
    ["file:/var/lib/t.db", { provider: "sqlite", url: "file:/var/lib/t.db", file: "/var/lib/t.db" }],
    ["file:///var/lib/t.db", { provider: "sqlite", url: "file:/var/lib/t.db", file: "/var/lib/t.db" }],
    ["rel.db", { provider: "sqlite", url: "file:/srv/rel.db", file: "/srv/rel.db" }],
    ["postgres://u:p@db:5432/trellis", { provider: "postgresql", url: "postgres://u:p@db:5432/trellis" }],
    [
      "postgresql://db/trellis?sslmode=require",
      { provider: "postgresql", url: "postgresql://db/trellis?sslmode=require" },
    ],
  ])("%s", (raw, expected) => {
    expect(parseDatabaseUrl(raw, "/srv")).toEqual(expected);
  });

  it.each([
    ["", /empty/],
    ["mysql://db/x", /scheme "mysql" is not supported/],
    ["file:", /does not name a SQLite file/],
    ["postgres://", /not a valid/],
  ])("rejects %j with a clear error", (raw, message) => {
    expect(() => parseDatabaseUrl(raw, "/srv")).toThrow(DatabaseConfigError);
    expect(() => parseDatabaseUrl(raw, "/srv")).toThrow(message);
  });
});
