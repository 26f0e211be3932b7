import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { hasCommand } from "../testing/netns";
import { rulesetFor, subnetRoutes } from "./forwarding";

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
    },
  );
});
