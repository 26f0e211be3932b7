import { describe, expect, it } from "vitest";
import type { MapMessage } from "@trellis/proto";
import { mapJson } from "./map-stream";

describe("mapJson", () => {
  it("equals JSON.stringify, for full maps and deltas", () => {
    const peer = { id: "a", key: "nodekey:00", name: "a", endpoints: ["1.2.3.4:5"], homeRegion: null };
    const full = {
      type: "full",
      seq: 0,
      node: { ...peer, user: null },
      peers: [peer, { ...peer, id: "b" }],
      relayMap: { regions: {} },
      dns: { domain: "t", nameservers: [] },
      packetFilter: [{ SrcIPs: ["*"] }],
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
    for (const m of [full, delta]) expect(mapJson(m)).toBe(JSON.stringify(m));
  });
});
