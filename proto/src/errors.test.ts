import { describe, expect, it } from "vitest";
import { z } from "zod";
import { apiErrorOf, plainError } from "./errors";

describe("apiErrorOf", () => {
  it("reads the server's error body, and names the status when there is none", () => {
    expect(
      apiErrorOf(400, '{"error":"invalid_request","message":"bad","issues":[{"path":"a","message":"m"}]}'),
    ).toEqual({
      error: "invalid_request",
      message: "bad",
      issues: [{ path: "a", message: "m" }],
    });
    expect(apiErrorOf(502, "<html>bad gateway</html>")).toEqual({
      error: "http_502",
      message: "The request failed (HTTP 502).",
      issues: [],
    });
    expect(apiErrorOf(401, "").error).toBe("http_401");
  });
});

describe("plain issue messages", () => {
  const messages = (schema: z.ZodType, value: unknown) => {
    const r = schema.safeParse(value, { error: plainError });
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
  };
  const Form = z.strictObject({
    name: z.string().min(1).max(10),
    port: z.number().int().min(1).max(65535),
    tags: z.array(z.string()).min(1).max(2),
    email: z.email(),
    kind: z.enum(["a", "b"]),
    label: z.string().regex(/^[a-z]+$/, "lowercase letters only"),
  });
  const good = { name: "n", port: 22, tags: ["x"], email: "a@example.com", kind: "a", label: "ok" };

  it("says what is wrong in words, not in the schema library's terms", () => {
    expect(messages(Form, { ...good, name: "", port: 70000, tags: [] })).toEqual([
      "name: must not be empty",
      "port: must be at most 65535",
      "tags: must not be empty",
    ]);
    expect(messages(Form, { ...good, name: "x".repeat(11), port: 0, tags: ["a", "b", "c"] })).toEqual([
      "name: must be at most 10 characters",
      "port: must be at least 1",
      "tags: must have at most 2 entries",
    ]);
    expect(messages(Form, { ...good, email: "nope", kind: "c", extra: 1 })).toEqual([
      "email: must be an email address",
      'kind: must be one of: "a", "b"',
      ": unknown field: extra",
    ]);
    expect(messages(Form, { ...good, port: "22", name: undefined })).toEqual([
      "name: is required",
      "port: must be a number",
    ]);
  });

  it("keeps a message the schema states itself", () => {
    expect(messages(Form, { ...good, label: "UP" })).toEqual(["label: lowercase letters only"]);
  });
});
