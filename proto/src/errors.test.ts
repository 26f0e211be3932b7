import { describe, expect, it } from "vitest";
import { apiErrorOf } from "./errors";

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
