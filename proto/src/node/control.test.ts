import { describe, expect, it } from "vitest";
import {
  EndpointsRequest,
  MapMessage,
  RegisterRequest,
  RelayMap,
  applyDelta,
  type FullMap,
  type Peer,
} from "./control";
import { formatNodeAuth, nodeAuthMessage, parseNodeAuth } from "./nodeauth";

const key = (b: number) => "nodekey:" + b.toString(16).padStart(2, "0").repeat(32);

const peer = (id: string, name: string): Peer => ({
  id,
  key: key(id.charCodeAt(0)),
  name,
  dnsName: `${name}.trellis.internal.`,
  hostname: name,
  os: "linux",
  tags: [],
  addresses: ["100.64.0.2/32"],
  allowedIPs: ["100.64.0.2/32"],
  endpoints: [],
  homeRegion: 1,
  online: true,
  lastSeen: null,
  keyExpiry: null,
});

describe("control wire types", () => {
  it("accept a register request and default the optional parts", () => {
    expect(RegisterRequest.parse({ preAuthKey: "x".repeat(40), hostname: " gw-1 " })).toEqual({
      preAuthKey: "x".repeat(40),
      hostname: "gw-1",
      os: "",
      routableIPs: [],
    });
  });

  it.each([
    [{ preAuthKey: "short", hostname: "a" }, "preAuthKey"],
    [{ hostname: "a", rotateFrom: { nodeKey: "nodekey:00", signature: "x" } }, "rotateFrom.nodeKey"],
    [{ preAuthKey: "x".repeat(40), hostname: "" }, "hostname"],
    [{ preAuthKey: "x".repeat(40), hostname: "a".repeat(64) }, "hostname"],
    [{ preAuthKey: "x".repeat(40), hostname: "a", routableIPs: ["10.0.0.0"] }, "routableIPs.0"],
    [{ preAuthKey: "x".repeat(40), hostname: "a", nodeKey: key(1) }, ""],
  ])("refuse %j naming %s", (body, path) => {
    const r = RegisterRequest.safeParse(body);
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => i.path.join("."))).toContain(path);
  });

  it("bound endpoint updates", () => {
    expect(EndpointsRequest.safeParse({ endpoints: ["1.2.3.4:41641", "[fd00::1]:5"] }).success).toBe(true);
    expect(EndpointsRequest.safeParse({ endpoints: ["1.2.3.4"] }).success).toBe(false);
    expect(EndpointsRequest.safeParse({ endpoints: Array(17).fill("1.2.3.4:1") }).success).toBe(false);
  });

  it("check a relay map's region ids", () => {
    const region = (id: number) => ({
      regionId: id,
      regionCode: "r",
      regionName: "R",
      nodes: [{ name: "1a", regionId: id, hostName: "h", url: "wss://h/derp", stunPort: 3478 }],
    });
    expect(RelayMap.safeParse({ regions: { "1": region(1) } }).success).toBe(true);
    expect(RelayMap.safeParse({ regions: { "2": region(1) } }).success).toBe(false);
  });

  it("apply deltas to a full map", () => {
    const full = {
      type: "full",
      seq: 0,
      node: {
        ...peer("s", "self"),
        user: null,
        ephemeral: false,
        authorized: true,
        advertisedRoutes: [],
        approvedRoutes: [],
      },
      peers: [peer("a", "alpha"), peer("b", "beta")],
      relayMap: { regions: {} },
      dns: { domain: "trellis.internal", nameservers: [] },
      packetFilter: [],
      sshPolicy: { rules: [] },
      policyVersion: 0,
    } satisfies FullMap;
    expect(MapMessage.parse(full)).toEqual(full);
    const next = applyDelta(full, {
      type: "delta",
      seq: 1,
      peersRemoved: ["a"],
      peersChanged: [peer("c", "gamma"), { ...peer("b", "beta"), endpoints: ["1.2.3.4:5"] }],
      packetFilter: [{ SrcIPs: ["*"], DstPorts: [{ IP: "*", Ports: { First: 0, Last: 65535 } }] }],
    });
    expect(next.seq).toBe(1);
    expect(next.peers.map((p) => [p.id, p.endpoints])).toEqual([
      ["b", ["1.2.3.4:5"]],
      ["c", []],
    ]);
    expect(next.packetFilter).toHaveLength(1);
    expect(full.peers).toHaveLength(2);
  });

  it("carry capability grants, companions without values as null", () => {
    const delta = {
      type: "delta",
      seq: 2,
      packetFilter: [
        { SrcIPs: [], CapGrant: [{ Dsts: ["100.64.0.2/32"], CapMap: { "example.com/cap/x": [{ a: 1 }] } }] },
        {
          SrcIPs: ["100.64.0.1"],
          CapGrant: [{ Dsts: ["100.64.0.2/32"], CapMap: { "tailscale.com/cap/relay-target": null } }],
        },
      ],
    };
    expect(MapMessage.parse(delta)).toEqual(delta);
    expect(() =>
      MapMessage.parse({
        ...delta,
        packetFilter: [{ SrcIPs: [], CapGrant: [{ Dsts: [], CapMap: { x: 1 } }] }],
      }),
    ).toThrow();
  });
});

describe("Trellis-Node authorization header", () => {
  it("round-trips and refuses anything else", () => {
    const f = { key: key(7), ts: 1_800_000_000, nonce: "0f".repeat(16), mac: "ab".repeat(32) };
    expect(parseNodeAuth(formatNodeAuth(f))).toEqual(f);
    expect(parseNodeAuth(formatNodeAuth({ ...f, nonce: "0f".repeat(8) }))).toBeNull();
    // The form before nonces: refused, not read as unsigned-for-replay.
    expect(parseNodeAuth(`Trellis-Node key=${f.key}, ts=${f.ts}, mac=${f.mac}`)).toBeNull();
    expect(parseNodeAuth(`Bearer ${"a".repeat(40)}`)).toBeNull();
    expect(parseNodeAuth(formatNodeAuth({ ...f, mac: "AB".repeat(32) }))).toBeNull();
    expect(parseNodeAuth(formatNodeAuth(f) + ", extra=1")).toBeNull();
    expect(parseNodeAuth(null)).toBeNull();
  });

  it("signs method, path, time, nonce and body hash", () => {
    expect(nodeAuthMessage("post", "/api/v1/register?x=1", 5, "ff", "00")).toBe(
      "POST\n/api/v1/register?x=1\n5\nff\n00",
    );
  });
});
