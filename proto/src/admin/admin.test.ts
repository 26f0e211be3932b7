import { describe, expect, expectTypeOf, it } from "vitest";
import type { z } from "zod";
import { AuditEventInfo, DnsSettings, Page, PolicyValidation, UserInfo } from "./admin";

describe("admin answer schemas", () => {
  const user: UserInfo = {
    id: "u1",
    email: "ada@example.com",
    name: "Ada",
    role: "admin",
    groups: [],
    login: "local",
    machines: 0,
    createdAt: "2025-01-01T00:00:00.000Z",
    lastLoginAt: null,
    loginThrottle: null,
  };

  it("Page(item) reads a page of items, and its type is Page<item>", () => {
    const UserPage = Page(UserInfo);
    expectTypeOf<z.infer<typeof UserPage>>().toEqualTypeOf<Page<UserInfo>>();
    expect(UserPage.parse({ items: [user], nextCursor: null, total: 1 }).items).toEqual([user]);
    expect(
      UserPage.safeParse({ items: [{ ...user, role: "owner" }], nextCursor: null, total: 1 }).success,
    ).toBe(false);
    expect(UserPage.safeParse({ items: [], total: 0 }).success).toBe(false);
  });

  it("PolicyValidation is either ok or a message with issues", () => {
    expect(PolicyValidation.parse({ ok: true })).toEqual({ ok: true });
    const failed = {
      ok: false,
      message: "policy:4:3: acls: bad",
      issues: [{ path: "acls", message: "bad", line: 4 }],
    };
    expect(PolicyValidation.parse(failed)).toEqual(failed);
    expect(PolicyValidation.safeParse({ ok: false }).success).toBe(false);
  });

  it("keeps an audit event's detail as any object", () => {
    const e = {
      id: "1",
      at: "t",
      actor: "a",
      actorName: "A",
      action: "x",
      target: "y",
      targetName: "Y",
      detail: { before: [1] },
    };
    expect(AuditEventInfo.parse(e)).toEqual(e);
  });
});

describe("DNS settings", () => {
  const base = { magicDns: true, domain: "trellis.internal", searchDomains: [] };
  it("takes IPv4 and IPv6 nameservers and refuses what is no address", () => {
    expect(DnsSettings.safeParse({ ...base, nameservers: ["1.1.1.1", "2606:4700:4700::1111"] }).success).toBe(
      true,
    );
    for (const bad of ["999.1.1.1", "1.1.1", "01.1.1.1", "1.1.1.1.1", "::g", "1:2:3:4:5:6:7:8:9", "."]) {
      const r = DnsSettings.safeParse({ ...base, nameservers: [bad] });
      expect(r.success, bad).toBe(false);
      expect(
        r.error?.issues.map((i) => [i.path.join("."), i.message]),
        bad,
      ).toEqual([["nameservers.0", "must be an IPv4 or IPv6 address"]]);
    }
  });
});
