// Cursor pagination shared by the admin list functions. A cursor is the
// base64url JSON of the last item's sort key (ending with its id where the
// sort key alone is not unique); the next page starts strictly after it, so
// pages neither repeat nor skip items when rows are added between requests.
import type { Page } from "@trellis/proto";
import { z } from "zod";
import { ControlError } from "../errors";
import type { AdminContext } from "./context";

/** An opaque cursor for a sort key. */
export function encodeCursor(key: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(key)).toString("base64url");
}

/** The sort key in `cursor`, checked against `shape`; 400 for a cursor that did not come from this list. */
export function decodeCursor<S extends z.ZodType>(cursor: string | undefined, shape: S): z.output<S> | null {
  if (cursor === undefined || cursor === "") return null;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    value = undefined;
  }
  const parsed = shape.safeParse(value);
  if (!parsed.success) {
    throw new ControlError("invalid_request", 400, "cursor: not a cursor of this list", [
      { path: "cursor", message: "not a cursor of this list; start again without it" },
    ]);
  }
  return parsed.data;
}

/** A cursor holding an ISO time and an id (lists sorted by a time, newest first). */
export const TimeIdCursor = z.tuple([z.iso.datetime(), z.string().max(64)]);

/**
 * A page from `rows` fetched with `take: limit + 1`: the extra row only tells
 * whether there is a next page.
 */
export function pageOf<R, T>(
  rows: readonly R[],
  limit: number,
  total: number,
  key: (row: R) => (string | number)[],
  map: (row: R) => T,
): Page<T> {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return {
    items: items.map(map),
    nextCursor: rows.length > limit && last !== undefined ? encodeCursor(key(last)) : null,
    total,
  };
}

/** A case-insensitive substring filter on either provider (SQLite's LIKE already ignores ASCII case). */
export function containsFilter(ctx: AdminContext, text: string): { contains: string } {
  return ctx.db.target.provider === "postgresql"
    ? ({ contains: text, mode: "insensitive" } as { contains: string })
    : { contains: text };
}
