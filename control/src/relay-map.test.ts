import { describe, expect, it } from "vitest";
import { RelayMap } from "@trellis/proto";
import { defaultRelayMap } from "./relay-map";

describe("default relay map", () => {
  it("is one region at the public URL's /derp with its STUN port", () => {
    const map = defaultRelayMap("https://vpn.example.com", 3478);
    expect(RelayMap.parse(map)).toEqual(map);
    expect(map.regions["1"]!.nodes[0]).toEqual({
      name: "1a",
      regionId: 1,
      hostName: "vpn.example.com",
      url: "wss://vpn.example.com/derp",
      stunPort: 3478,
    });
  });

  it("keeps a port and path, and marks STUN off as -1", () => {
    const node = defaultRelayMap("http://10.0.0.1:8080/trellis", null).regions["1"]!.nodes[0]!;
    expect(node).toMatchObject({ url: "ws://10.0.0.1:8080/trellis/derp", stunPort: -1 });
  });
});
