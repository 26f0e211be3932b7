import { describe, expect, it } from "vitest";
import type { Peer } from "@trellis/proto";
import { diffMaps, PeerIndex } from "./map-diff";
import type { NodeMap } from "./netmap";

const peer = (id: string, endpoint = "192.0.2.1:1") =>
  ({ id, name: `n-${id}`, endpoints: [endpoint] }) as unknown as Peer;

describe("PeerIndex", () => {
  it("answers as a Map by id would, for present and absent ids", () => {
    // Seeded ids of varied length and order, so bisection meets every shape of list.
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let round = 0; round < 50; round++) {
      const ids = [
        ...new Set(
          Array.from({ length: Math.floor(rand() * 60) }, () =>
            rand()
              .toString(36)
              .slice(2, 4 + Math.floor(rand() * 8)),
          ),
        ),
      ];
      const peers = ids.map((id) => peer(id));
      const index = new PeerIndex();
      index.reset(peers);
      const map = new Map(peers.map((p) => [p.id, p]));
      expect(index.size).toBe(map.size);
      expect(new Set(index.keys())).toEqual(new Set(map.keys()));
      for (const id of [...ids, "", "zzzzzzzzzz", "0", ...ids.map((i) => i + "x")]) {
        expect(index.get(id)).toBe(map.get(id));
        expect(index.has(id)).toBe(map.has(id));
      }
      if (ids.length) {
        const moved = peer(ids[0]!, "198.51.100.1:2");
        index.replace(moved);
        expect(index.get(ids[0]!)).toBe(moved);
        index.replace(peer("absent"));
        expect(index.has("absent")).toBe(false);
      }
    }
  });

  it("gives diffMaps the same delta as a Map", () => {
    const a = peer("a");
    const b = peer("b");
    const c = peer("c");
    const prev = {
      node: {},
      peers: [a, b, c],
      packetFilter: [],
      sshPolicy: { rules: [] },
      relayMap: {},
      dns: {},
      policyVersion: 1,
    } as unknown as NodeMap;
    const next = { ...prev, peers: [a, peer("b", "203.0.113.9:3")], policyVersion: 2 } as NodeMap;
    const index = new PeerIndex();
    index.reset(prev.peers);
    const withMap = diffMaps(prev, new Map(prev.peers.map((p) => [p.id, p])), next);
    expect(diffMaps(prev, index, next)).toEqual(withMap);
    expect(withMap).toMatchObject({ peersChanged: [next.peers[1]], peersRemoved: ["c"], policyVersion: 2 });
  });
});
