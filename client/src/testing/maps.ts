// Map messages for tests of the node side.
import type { FullMap, Peer } from "@trellis/proto";

export const testKey = (b: number) => "nodekey:" + b.toString(16).padStart(2, "0").repeat(32);

export function testPeer(id: string, name: string): Peer {
  return {
    id,
    key: testKey(id.charCodeAt(0)),
    name,
    dnsName: `${name}.trellis.internal.`,
    hostname: name,
    os: "linux",
    tags: [],
    addresses: ["100.64.0.2/32"],
    allowedIPs: ["100.64.0.2/32"],
    endpoints: [],
    homeRegion: null,
    online: true,
    lastSeen: null,
    keyExpiry: null,
  };
}

/** A valid full map with sequence number `seq` and the given peers. */
export function fullMap(seq: number, peers: Peer[] = []): FullMap {
  return {
    type: "full",
    seq,
    node: {
      ...testPeer("self", "self"),
      addresses: ["100.64.0.1/32"],
      user: "u1",
      ephemeral: false,
      authorized: true,
      advertisedRoutes: [],
      approvedRoutes: [],
    },
    peers,
    relayMap: { regions: {} },
    dns: { domain: "trellis.internal", nameservers: [] },
    packetFilter: [],
    sshPolicy: { rules: [] },
    policyVersion: 0,
  };
}
