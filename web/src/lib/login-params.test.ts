import { describe, expect, it } from "vitest";
import { waitWords } from "@trellis/proto/admin";
import {
  DEFAULT_NEXT,
  describeLoginFailure,
  encodeLoginError,
  loginErrorMessage,
  parseLoginError,
  safeNext,
} from "./login-params";

describe("safeNext: only paths of this origin are followed after login", () => {
  it("keeps a path with its query and fragment", () => {
    expect(safeNext("/machines/abc?tab=routes#x")).toBe("/machines/abc?tab=routes#x");
    expect(safeNext("/acls")).toBe("/acls");
  });

  it("refuses whatever the browser would resolve to another origin", () => {
    for (const evil of [
      "/\\evil.com",
      "/%5Cevil.com".replace("%5C", "\\"),
      "//evil.com",
      "/\t/evil.com",
      "/\n/evil.com",
      "/.//evil.com",
      "https://evil.com/",
      "javascript:alert(1)",
      "evil.com",
      "",
    ]) {
      expect(safeNext(evil), JSON.stringify(evil)).toBe(DEFAULT_NEXT);
    }
    expect(safeNext(undefined)).toBe(DEFAULT_NEXT);
  });

  it("a percent-encoded backslash stays a path on this origin", () => {
    const next = safeNext("/%5Cevil.com");
    expect(new URL(next, "https://console.example").origin).toBe("https://console.example");
  });
});

describe("loginErrorMessage: the URL names an error, the text is ours", () => {
  it("maps known codes and never echoes unknown text", () => {
    expect(loginErrorMessage("CredentialsSignin")).toBe("wrong email or password");
    expect(loginErrorMessage("account_exists")).toMatch(/already exists/);
    expect(loginErrorMessage("Your account is locked, call +1 555 0100")).toBe(
      "login did not complete; try again",
    );
    expect(loginErrorMessage("toString")).toBe("login did not complete; try again");
    expect(loginErrorMessage(null)).toBeNull();
  });
});

describe("login throttle messages: one message in plain words, from the server's numbers", () => {
  it("carries the code and the throttle's state through next-auth's error text", () => {
    const left = encodeLoginError("bad_credentials", { remaining: 2, retryAfterMs: 0 });
    expect(left).toBe("bad_credentials:left=2");
    expect(parseLoginError(left)).toEqual({ code: "bad_credentials", left: 2, waitMs: null });
    const wait = encodeLoginError("rate_limited", { remaining: 0, retryAfterMs: 59_000.4 });
    expect(parseLoginError(wait)).toEqual({ code: "rate_limited", left: null, waitMs: 59_001 });
    expect(parseLoginError(encodeLoginError("not_allowed", null))).toEqual({
      code: "not_allowed",
      left: null,
      waitMs: null,
    });
  });

  it("warns before the delay, then says how long to wait, counting down", () => {
    const f = parseLoginError;
    expect(describeLoginFailure(f("bad_credentials:left=2"), 0)).toBe(
      "wrong email or password; 2 attempts left before sign-in slows down",
    );
    expect(describeLoginFailure(f("bad_credentials:left=1"), 0)).toMatch(/; 1 attempt left/);
    expect(describeLoginFailure(f("bad_credentials:wait=60000"), 60_000)).toBe(
      "wrong email or password; wait 1 minute before trying again",
    );
    expect(describeLoginFailure(f("bad_credentials:wait=60000"), 0)).toBe(
      "wrong email or password; you can try again now",
    );
    expect(describeLoginFailure(f("rate_limited:wait=840000"), 839_000)).toBe(
      "too many failed sign-ins; try again in 14 minutes",
    );
    expect(describeLoginFailure(f("rate_limited:wait=5000"), 4_200)).toBe(
      "too many failed sign-ins; try again in 5 seconds",
    );
    expect(describeLoginFailure(f("CredentialsSignin"), 0)).toBe("wrong email or password");
    // No raw text from a library or the server reaches the page.
    expect(describeLoginFailure(f("Error: connect ECONNREFUSED 127.0.0.1:5432"), 0)).toBe(
      "login did not complete; try again",
    );
    expect(describeLoginFailure(f("server_error"), 0)).toBe("login failed on the server; try again");
  });

  it("a URL's error names only a code: numbers in it are not believed", () => {
    expect(loginErrorMessage("rate_limited:wait=99999999")).toBe("login did not complete; try again");
    expect(loginErrorMessage("rate_limited")).toBe("too many failed sign-ins; try again later");
  });

  it("words waits the way people say them, rounded up", () => {
    expect([1, 999, 1000, 1001, 59_000, 60_000, 61_000, 900_000, 3600_000, 3_900_000].map(waitWords)).toEqual(
      [
        "1 second",
        "1 second",
        "1 second",
        "2 seconds",
        "59 seconds",
        "1 minute",
        "2 minutes",
        "15 minutes",
        "1 hour",
        "1 hour 5 minutes",
      ],
    );
  });
});
