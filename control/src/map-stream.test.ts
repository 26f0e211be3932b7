import { describe, expect, it } from "vitest";
import type { MapMessage } from "@trellis/proto";
import { mapJson, sseEvent } from "./map-stream";

describe("map message encoding", () => {
  const peer = { id: "a", key: "nodekey:00", name: "ä-peer", endpoints: ["1.2.3.4:5"], homeRegion: null };
  const src = ["100.64.0.1", "100.64.0.2", "fd7a:115c:a1e0::1"];
  const filter = [
    { SrcIPs: src, DstPorts: [{ IP: "100.64.0.3", Ports: { First: 22, Last: 22 } }], IPProto: [6] },
    { SrcIPs: src, CapGrant: [{ Dsts: ["100.64.0.3/32"], CapMap: { "example.com/cap/ü": [{ a: 1 }] } }] },
  ];
  const full = {
    type: "full",
    seq: 0,
    node: { ...peer, user: null },
    peers: [peer, { ...peer, id: "b" }],
    relayMap: { regions: {} },
    dns: { domain: "t", nameservers: [] },
    packetFilter: filter,
    sshPolicy: { rules: [] },
    policyVersion: 3,
  } as unknown as MapMessage;
  const delta = {
    type: "delta",
    seq: 4,
    peersChanged: [peer],
    peersRemoved: ["c"],
    node: undefined,
  } as MapMessage;
  const policyDelta = {
    type: "delta",
    seq: 5,
    packetFilter: filter,
    policyVersion: 4,
  } as unknown as MapMessage;
  const filterOnly = { type: "delta", seq: 6, packetFilter: [] } as unknown as MapMessage;
  const messages = [full, delta, policyDelta, filterOnly];

  it("writes JSON.stringify's text, for full maps and deltas, with and without filters", () => {
    for (const m of messages) expect(mapJson(m)).toBe(JSON.stringify(m));
  });

  it("frames each message as one Server-Sent Event in UTF-8", () => {
    for (const m of messages) {
      expect(sseEvent(m).toString("utf8")).toBe(
        `id: ${m.seq}\nevent: ${m.type}\ndata: ${JSON.stringify(m)}\n\n`,
      );
    }
  });
});
