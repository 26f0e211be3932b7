import { describe, expect, it } from "vitest";
import { DEFAULT_NEXT, loginErrorMessage, safeNext } from "./login-params";

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
