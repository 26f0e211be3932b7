import { afterEach, describe, expect, expectTypeOf, it, vi } from "vitest";
import type {
  checkReachability,
  createKey,
  listKeys,
  revokeKey,
  getPolicy,
  getPolicyVersion,
  listAudit,
  listConnections,
  listMachines,
  listPolicyVersions,
  listUsers,
  restorePolicyVersion,
  savePolicyText,
  updateUser,
  validatePolicyText,
} from "@trellis/control/admin";
import type { createApiToken, createInvitation, listApiTokens, revokeApiToken } from "@trellis/control/auth";
import type { getDnsSettings, getTailnetSettings } from "@trellis/control/settings";
import {
  type ApiTokenInfo,
  type CreatedApiToken,
  type CreatedPreAuthKey,
  type CurrentPolicy,
  type DnsSettings,
  type InvitationInfo,
  MachineInfo,
  NoContent,
  type Page,
  type PolicyValidation,
  type PolicyVersionDetail,
  type ReachabilityResult,
  SavedPolicy,
  type TailnetSettings,
  UserInfo,
  type AuditEventInfo,
  type ConnectionInfo,
  type PolicyVersionInfo,
  type PreAuthKeyInfo,
} from "@trellis/proto/admin";
import { api, parseAnswer } from "./api";

const machine: MachineInfo = {
  id: "n1",
  name: "laptop",
  dnsName: "laptop.trellis.internal",
  hostname: "laptop",
  os: "linux",
  nodeKey: "nodekey:" + "00".repeat(32),
  ipv4: "100.64.0.1",
  ipv6: null,
  user: { id: "u1", email: "ada@example.com", name: "Ada" },
  tags: [],
  online: true,
  lastSeen: null,
  keyExpiry: null,
  expired: false,
  ephemeral: false,
  authorized: true,
  advertisedRoutes: [],
  approvedRoutes: [],
  exitNodeAdvertised: false,
  exitNodeApproved: false,
  endpoints: [],
  homeRegion: 1,
  createdAt: "2025-01-01T00:00:00.000Z",
};

describe("parseAnswer", () => {
  it("gives the parsed answer when it matches its schema", () => {
    expect(parseAnswer(200, JSON.stringify(machine), MachineInfo)).toEqual({
      ok: true,
      status: 200,
      data: machine,
    });
  });

  it("drops fields the schema does not know, so a newer server does not break the console", () => {
    const res = parseAnswer(200, JSON.stringify({ ...machine, added: 1 }), MachineInfo);
    expect(res.ok && "added" in res.data).toBe(false);
  });

  it("reports an answer of another shape as an error naming where it differs", () => {
    const res = parseAnswer(200, JSON.stringify({ ...machine, tags: "x" }), MachineInfo);
    expect(res).toMatchObject({ ok: false, status: 200, error: "bad_response", issues: [] });
    expect(!res.ok && res.message).toMatch(/^The server's answer was not understood \(tags: .+\)/);
  });

  it("reports a body that is not JSON", () => {
    const res = parseAnswer(200, "<html>", SavedPolicy);
    expect(res).toMatchObject({ ok: false, error: "bad_response" });
    expect(!res.ok && res.message).toContain("it is not JSON");
  });

  it("takes an empty body as NoContent, and refuses one where an answer was expected", () => {
    expect(parseAnswer(204, "", NoContent)).toEqual({ ok: true, status: 204, data: undefined });
    expect(parseAnswer(200, "", SavedPolicy).ok).toBe(false);
  });
});

describe("api", () => {
  afterEach(() => vi.unstubAllGlobals());

  function answer(status: number, body: string) {
    const fetch = vi.fn(() => Promise.resolve(new Response(status === 204 ? null : body, { status })));
    vi.stubGlobal("fetch", fetch);
    return fetch;
  }

  it("sends JSON and parses the answer with the schema", async () => {
    const fetch = answer(200, JSON.stringify({ version: 7 }));
    expect(await api("PUT", "/api/v1/policy", SavedPolicy, { text: "{}" })).toEqual({
      ok: true,
      status: 200,
      data: { version: 7 },
    });
    expect(fetch).toHaveBeenCalledWith(
      "/api/v1/policy",
      expect.objectContaining({
        method: "PUT",
        body: '{"text":"{}"}',
        headers: { "content-type": "application/json", accept: "application/json" },
      }),
    );
  });

  it("reads error bodies with proto's apiErrorOf", async () => {
    const issues = [{ path: "name", message: "too long" }];
    answer(400, JSON.stringify({ error: "invalid_request", message: "invalid: name: too long", issues }));
    expect(await api("PATCH", "/api/v1/machines/n1", MachineInfo, { name: "x" })).toEqual({
      ok: false,
      status: 400,
      error: "invalid_request",
      message: "invalid: name: too long",
      issues,
    });
    answer(401, "");
    expect(await api("GET", "/api/v1/me", UserInfo)).toMatchObject({
      ok: false,
      error: "http_401",
      message: "Your session has ended; log in again.",
    });
  });

  it("reports an unreachable server, and lets an abort through", async () => {
    vi.stubGlobal("fetch", () => Promise.reject(new TypeError("fetch failed")));
    expect(await api("GET", "/api/v1/me", UserInfo)).toMatchObject({
      ok: false,
      status: 0,
      error: "network",
    });
    vi.stubGlobal("fetch", () => Promise.reject(new DOMException("aborted", "AbortError")));
    await expect(api("GET", "/api/v1/me", UserInfo)).rejects.toThrow("aborted");
  });
});

// What the admin library returns is what the console parses: each endpoint's
// result type must fit the schema the console reads its answer with. Checked
// by the typecheck (expectTypeOf does nothing at run time).
type Result<F extends (...args: never[]) => unknown> = Awaited<ReturnType<F>>;
it("the admin library's results fit the console's answer schemas", () => {
  expectTypeOf<Result<typeof listMachines>>().toExtend<Page<MachineInfo>>();
  expectTypeOf<Result<typeof listUsers>>().toExtend<Page<UserInfo>>();
  expectTypeOf<Result<typeof updateUser>>().toExtend<UserInfo>();
  expectTypeOf<Result<typeof listAudit>>().toExtend<Page<AuditEventInfo>>();
  expectTypeOf<Result<typeof listConnections>>().toExtend<Page<ConnectionInfo>>();
  expectTypeOf<Result<typeof listPolicyVersions>>().toExtend<Page<PolicyVersionInfo>>();
  expectTypeOf<Result<typeof getPolicy>>().toExtend<CurrentPolicy>();
  expectTypeOf<Result<typeof getPolicyVersion>>().toExtend<PolicyVersionDetail>();
  expectTypeOf<Result<typeof savePolicyText>>().toExtend<SavedPolicy>();
  expectTypeOf<Result<typeof restorePolicyVersion>>().toExtend<SavedPolicy>();
  expectTypeOf<Result<typeof validatePolicyText>>().toExtend<PolicyValidation>();
  expectTypeOf<Result<typeof checkReachability>>().toExtend<ReachabilityResult>();
  expectTypeOf<Result<typeof createApiToken>>().toExtend<CreatedApiToken>();
  expectTypeOf<Result<typeof revokeApiToken>>().toExtend<ApiTokenInfo>();
  expectTypeOf<Result<typeof listApiTokens>>().toExtend<ApiTokenInfo[]>();
  expectTypeOf<Result<typeof createInvitation>["invitation"]>().toExtend<InvitationInfo>();
  expectTypeOf<Result<typeof getTailnetSettings>>().toExtend<TailnetSettings>();
  expectTypeOf<Result<typeof getDnsSettings>>().toExtend<DnsSettings>();
  expectTypeOf<Result<typeof createKey>>().toExtend<CreatedPreAuthKey>();
  expectTypeOf<Result<typeof revokeKey>>().toExtend<PreAuthKeyInfo>();
  expectTypeOf<Result<typeof listKeys>>().toExtend<PreAuthKeyInfo[]>();
});
