import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { hasCommand } from "../testing/netns";
import { plainPeerAddresses, rulesetFor, subnetRoutes } from "./forwarding";
import type { Peer } from "@trellis/proto";

describe("subnet routes a gateway serves", () => {
  it("are its own approved routes, exit routes included once approved", () => {
    expect(
      subnetRoutes(
        ["10.1.0.0/16", "0.0.0.0/0", "::/0", "fd00:1::/64", "192.168.9.0/24"],
        ["fd00:1::/64", "10.1.0.0/16", "0.0.0.0/0", "172.16.0.0/12"],
      ),
    ).toEqual(["0.0.0.0/0", "10.1.0.0/16", "fd00:1::/64"]);
  });

  it("as an exit node, masquerade everything of the family that leaves", () => {
    const rules = rulesetFor("trellis0", ["0.0.0.0/0", "10.1.0.0/16", "::/0"]);
    expect(rules).toContain('ip saddr 100.64.0.0/10 oifname != "trellis0" masquerade');
    expect(rules).toContain('ip6 saddr fd7a:115c:a1e0::/48 oifname != "trellis0" masquerade');
    expect(rules).not.toContain("daddr");
  });

  it("are masqueraded from the tailnet in a table of Trellis's own", () => {
    const rules = rulesetFor("trellis0", ["10.1.0.0/16", "fd00:1::/64"]);
    expect(rules).toContain("table inet trellis {");
    expect(rules).toContain(
      'ip saddr 100.64.0.0/10 ip daddr { 10.1.0.0/16 } oifname != "trellis0" masquerade',
    );
    expect(rules).toContain(
      'ip6 saddr fd7a:115c:a1e0::/48 ip6 daddr { fd00:1::/64 } oifname != "trellis0" masquerade',
    );
    expect(rulesetFor("trellis0", ["10.1.0.0/16"])).not.toContain("ip6");
  });

  it("include the gateway's own plain WireGuard peers, forwarded through the TUN device without masquerade", () => {
    const peer = (id: string, n: number, extra: Partial<Peer>): Peer => ({
      id,
      key: `nodekey:${"0".repeat(63)}${n}`,
      name: id,
      dnsName: `${id}.t.internal.`,
      hostname: id,
      os: "",
      tags: [],
      addresses: [`100.64.0.${n}/32`, `fd7a:115c:a1e0::${n}/128`],
      allowedIPs: [],
      endpoints: [],
      homeRegion: null,
      online: false,
      lastSeen: null,
      keyExpiry: null,
      ...extra,
    });
    const map = {
      node: peer("gw", 1, {}) as never,
      peers: [
        peer("mine", 4, { isWireGuardOnly: true, gateway: "gw" }),
        peer("theirs", 5, { isWireGuardOnly: true, gateway: "other" }),
        peer("node", 6, {}),
      ],
    };
    expect(plainPeerAddresses(map)).toEqual(["100.64.0.4/32", "fd7a:115c:a1e0::4/128"]);
    const rules = rulesetFor("trellis0", ["10.1.0.0/16", ...plainPeerAddresses(map)]);
    expect(rules).toContain("ip daddr { 10.1.0.0/16 }");
    expect(rules).not.toContain("100.64.0.4");
    expect(rules).not.toContain("ip6 saddr");
    expect(rulesetFor("trellis0", plainPeerAddresses(map))).not.toContain("masquerade");
  });

  it.skipIf(process.getuid?.() !== 0 || !hasCommand("nft"))(
    "is a ruleset nft accepts (checked, not applied)",
    () => {
      execFileSync("nft", ["-c", "-f", "-"], {
        input: rulesetFor("trellis0", ["10.1.0.0/16", "fd00:1::/64"]),
        timeout: 10_000,
      });
      execFileSync("nft", ["-c", "-f", "-"], {
        input: rulesetFor("trellis0", ["0.0.0.0/0", "::/0"]),
        timeout: 10_000,
      });
      execFileSync("nft", ["-c", "-f", "-"], {
        input: rulesetFor("trellis0", ["100.64.0.4/32"]),
        timeout: 10_000,
      });
    },
  );
});
