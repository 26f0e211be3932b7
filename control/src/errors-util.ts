import type { z } from "zod";
import { plainError, zodIssues } from "@trellis/proto";
import { ControlError } from "./errors";

/** Parse `value` with `schema`, or throw a 400 listing every field problem. */
export function parseOr400<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(value, { error: plainError });
  if (!parsed.success) {
    throw new ControlError(
      "invalid_request",
      400,
      `${what}: ${summarize(parsed.error)}`,
      zodIssues(parsed.error),
    );
  }
  return parsed.data;
}

function summarize(err: z.ZodError): string {
  const first = err.issues[0]!;
  const path = first.path.join(".");
  const more = err.issues.length > 1 ? ` (and ${err.issues.length - 1} more)` : "";
  return `${path ? `${path}: ` : ""}${first.message}${more}`;
}

/** True for a unique-constraint violation (Prisma P2002), on either provider. */
export function isUniqueViolation(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === "P2002";
}

/** JSON text of a string array column, tolerating bad data as empty. */
export function jsonList(text: string): string[] {
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return [];
  }
}
