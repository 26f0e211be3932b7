import { describe, expect, it } from "vitest";
import type { FullMap } from "@trellis/proto/node";
import { acceptedRoutes, parseRouteList, routableIPs, RouteListError } from "./routes";

describe("--advertise-routes, as up and set read it", () => {
  it("gives canonical prefixes in the order given, without repeats; empty is none", () => {
    expect(parseRouteList("10.1.0.0/16, FD00:0:0:1:0:0:0:0/64,192.168.9.0/24,10.1.0.0/16")).toEqual([
      "10.1.0.0/16",
      "fd00:0:0:1::/64",
      "192.168.9.0/24",
    ]);
    expect(parseRouteList("")).toEqual([]);
    expect(parseRouteList(" , ")).toEqual([]);
  });

  it("refuses what is not a prefix, host bits, and default routes, naming the entry", () => {
    expect(() => parseRouteList("10.1.0.0/16,banana")).toThrow(
      new RouteListError('"banana" is not a CIDR prefix such as 10.0.0.0/24'),
    );
    expect(() => parseRouteList("10.1.0.1")).toThrow(/"10\.1\.0\.1" is not a CIDR prefix/);
    expect(() => parseRouteList("10.1.0.0/33")).toThrow(/not a CIDR prefix/);
    expect(() => parseRouteList("10.1.2.3/16")).toThrow(
      '"10.1.2.3/16" has host bits set: did you mean 10.1.0.0/16?',
    );
    expect(() => parseRouteList("0.0.0.0/0")).toThrow(/--advertise-exit-node/);
    expect(() => parseRouteList("::/0")).toThrow(/--advertise-exit-node/);
  });
});

describe("what a node registers as routable", () => {
  it("is its routes, sorted as the server keeps them, and the exit routes when it offers itself as an exit node", () => {
    expect(
      routableIPs({ advertiseRoutes: ["192.168.9.0/24", "10.1.0.0/16"], advertiseExitNode: false }),
    ).toEqual(["10.1.0.0/16", "192.168.9.0/24"]);
    expect(routableIPs({ advertiseRoutes: ["10.1.0.0/16"], advertiseExitNode: true })).toEqual([
      "0.0.0.0/0",
      "10.1.0.0/16",
      "::/0",
    ]);
  });
});

describe("routes accepted from peers (--accept-routes)", () => {
  const peer = (name: string, addresses: string[], routes: string[]) => ({
    name,
    addresses,
    allowedIPs: [...addresses, ...routes],
  });
  const map = (own: string[], peers: ReturnType<typeof peer>[]) =>
    ({ node: { advertisedRoutes: own }, peers }) as unknown as Pick<FullMap, "node" | "peers">;

  it("are the peers' subnet routes: not their addresses, exit routes, tailnet ranges or this node's own routes", () => {
    const m = map(
      ["192.168.9.0/24"],
      [
        peer("router", ["100.64.0.2/32", "fd7a:115c:a1e0::2/128"], ["10.1.0.0/16", "fd00:1::/64"]),
        peer("exit", ["100.64.0.3/32"], ["0.0.0.0/0", "::/0"]),
        peer("odd", ["100.64.0.4/32"], ["100.64.0.0/24", "192.168.9.0/25", "10.1.0.0/16"]),
        peer("plain", ["100.64.0.5/32"], []),
      ],
    );
    expect(acceptedRoutes(m)).toEqual(["10.1.0.0/16", "fd00:1::/64"]);
    expect(acceptedRoutes(map([], []))).toEqual([]);
  });
});
