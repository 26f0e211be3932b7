import { describe, expect, it } from "vitest";
import type { Models } from "@trellis/db";
import { addressesOf } from "./addresses";
import { filterBytes } from "./map-stream";
import { sameFilter, TailnetSnapshot } from "./netmap";
import { addrSet, parsePolicy, type FilterRule } from "@trellis/policy";
import { parseAddr, parsePrefix, prefixesOverlap } from "@trellis/proto/ip";

const relayMap = { regions: {} };
const dns = { domain: "t.internal", nameservers: [] };

function row(i: number, tags: string[], extra: Partial<Models.Node> = {}): Models.Node {
  const { ipv4, ipv6 } = addressesOf(i);
  const now = new Date(0);
  return {
    id: `id${i}`,
    nodeKey: "nodekey:" + i.toString(16).padStart(64, "0"),
    previousKeys: "[]",
    name: `n${String(i).padStart(3, "0")}`,
    hostname: `n${i}`,
    ipv4,
    ipv6,
    os: "",
    tags: JSON.stringify(tags),
    userId: null,
    advertisedRoutes: "[]",
    approvedRoutes: "[]",
    endpoints: "[]",
    homeRegion: null,
    online: false,
    lastSeen: null,
    ephemeral: false,
    authorized: true,
    preAuthKeyId: null,
    createdAt: now,
    updatedAt: now,
    expiresAt: null,
    wireguardOnly: false,
    gatewayId: null,
    ...extra,
  };
}

const active = (text: string) => ({ version: 1, text, policy: parsePolicy(text) });

/** The definition, pair by pair: `to` accepts packets from `from`'s addresses or routed subnets. */
function accepts(filter: readonly FilterRule[], from: Models.Node): boolean {
  const addrs = [from.ipv4!, from.ipv6!].map((a) => parseAddr(a)!);
  const routes = (JSON.parse(from.approvedRoutes) as string[])
    .map((r) => parsePrefix(r)!)
    .filter((p) => p.bits > 0);
  return filter.some(
    (r) =>
      r.DstPorts?.length &&
      r.SrcIPs.some((s) => {
        if (s === "*") return true;
        if (addrs.some((a) => addrSet(s)(a))) return true;
        const p = s.includes("-") ? null : parsePrefix(s);
        if (p) return routes.some((q) => prefixesOverlap(p, q));
        const [lo, hi] = s.split("-").map((x) => parseAddr(x)!);
        return routes.some((q) => q.v === lo!.v && q.base <= hi!.n && q.base >= lo!.n);
      }),
  );
}

describe("netmap visibility", () => {
  it("matches the pairwise definition for groups, ranges, subnet routers and allow-all sources", () => {
    const groups = 4;
    const rows = Array.from({ length: 40 }, (_, k) => row(k + 1, [`tag:g${k % groups}`]));
    // Consecutive addresses in one group, so sources compress to a-b ranges.
    rows.push(...Array.from({ length: 6 }, (_, k) => row(100 + k, ["tag:block"])));
    rows.push(
      row(200, ["tag:router"], { advertisedRoutes: '["10.1.0.0/16"]', approvedRoutes: '["10.1.0.0/16"]' }),
      row(201, ["tag:lonely"]),
      row(202, ["tag:open"]),
    );
    const tags = ["g0", "g1", "g2", "g3", "block", "router", "lonely", "open"].map((t) => `tag:${t}`);
    const text = JSON.stringify({
      tagOwners: Object.fromEntries(tags.map((t) => [t, []])),
      acls: [
        ...Array.from({ length: groups }, (_, g) => ({
          action: "accept",
          src: [`tag:g${g}`],
          dst: [`tag:g${g}:*`],
        })),
        { action: "accept", src: ["tag:block"], dst: ["tag:g1:22"] },
        { action: "accept", src: ["tag:g2"], dst: ["10.1.2.0/24:443"] },
        { action: "accept", src: ["*"], dst: ["tag:open:80"] },
      ],
    });
    const snap = TailnetSnapshot.build(rows, [], active(text), "t.internal");
    const maps = new Map(rows.map((r) => [r.id, snap.mapFor(r.id, relayMap, dns)!]));
    for (const a of rows) {
      const expected = rows
        .filter(
          (b) =>
            b !== a && (accepts(maps.get(a.id)!.packetFilter, b) || accepts(maps.get(b.id)!.packetFilter, a)),
        )
        .map((b) => b.name);
      expect(
        maps.get(a.id)!.peers.map((p) => p.name),
        a.name,
      ).toEqual(expected);
    }
    // Spot checks of the meaning.
    const names = (id: string) => maps.get(id)!.peers.map((p) => p.name);
    expect(names("id201")).toEqual(["n202"]);
    expect(names("id200")).toEqual(expect.arrayContaining(["n003", "n202"]));
    expect(names("id200")).not.toContain("n001");
    expect(names("id202")).toHaveLength(rows.length - 1);
    // "*" reaches n202 as the tailnet's address space and the approved route, as Tailscale compiles it.
    expect(maps.get("id202")!.packetFilter.map((r) => r.SrcIPs)).toEqual([
      ["10.1.0.0/16", "100.64.0.0-100.115.91.255", "100.115.94.0-100.127.255.255", "fd7a:115c:a1e0::/48"],
    ]);
  });

  it("counts a subnet router whose route overlaps tailnet addresses, and writes filters as JSON.stringify does", () => {
    const rows = [
      row(1, ["tag:a"]),
      row(2, ["tag:b"]),
      row(3, ["tag:r"], { advertisedRoutes: '["100.64.0.0/24"]', approvedRoutes: '["100.64.0.0/24"]' }),
      row(4, ["tag:c"]),
    ];
    const text = JSON.stringify({
      tagOwners: { "tag:a": [], "tag:b": [], "tag:r": [], "tag:c": [] },
      acls: [
        { action: "accept", src: ["tag:a"], dst: ["tag:b:22"] },
        { action: "accept", src: ["tag:c"], dst: ["tag:b:80", "tag:a:443"], proto: "tcp" },
      ],
    });
    const snap = TailnetSnapshot.build(rows, [], active(text), "t.internal");
    const map = (id: string) => snap.mapFor(id, relayMap, dns)!;
    // n002 accepts n001's address, which the router's route also covers: the router is n002's peer.
    expect(map("id2").peers.map((p) => p.name)).toEqual(["n001", "n003", "n004"]);
    for (const r of rows) {
      const f = map(r.id).packetFilter;
      expect(filterBytes(f).toString()).toBe(JSON.stringify(f));
    }
  });

  it("calls filters equal exactly when their JSON is equal", () => {
    const base = {
      SrcIPs: ["100.64.0.1", "100.64.0.2"],
      DstPorts: [{ IP: "100.64.0.3", Ports: { First: 22, Last: 22 } }],
    };
    const variants = [
      [base],
      [{ ...base, SrcIPs: [...base.SrcIPs] }],
      [{ ...base, SrcIPs: ["100.64.0.1"] }],
      [{ ...base, SrcIPs: ["100.64.0.1", "100.64.0.9"] }],
      [{ ...base, DstPorts: [{ IP: "100.64.0.3", Ports: { First: 22, Last: 23 } }] }],
      [{ ...base, DstPorts: [{ IP: "100.64.0.4", Ports: { First: 22, Last: 22 } }] }],
      [{ ...base, DstPorts: [] }],
      [{ SrcIPs: base.SrcIPs }],
      [{ ...base, IPProto: [6] }],
      [{ ...base, IPProto: [17] }],
      [{ ...base, IPProto: [6, 17] }],
      [{ ...base, CapGrant: [{ Dsts: ["100.64.0.3/32"], CapMap: { "example.com/cap/a": [{}] } }] }],
      [{ ...base, CapGrant: [{ Dsts: ["100.64.0.3/32"], CapMap: { "example.com/cap/b": [{}] } }] }],
      [base, base],
      [],
    ];
    for (const a of variants) {
      for (const b of variants) {
        expect(sameFilter(a, b), `${JSON.stringify(a)} vs ${JSON.stringify(b)}`).toBe(
          JSON.stringify(a) === JSON.stringify(b),
        );
        expect(filterBytes(a).toString()).toBe(JSON.stringify(a));
      }
    }
  });

  it("patches attributes without recomputing visibility, reusing unchanged peers", () => {
    const rows = [row(1, ["tag:a"]), row(2, ["tag:a"]), row(3, ["tag:a"])];
    const text = '{"acls":[{"action":"accept","src":["*"],"dst":["*:*"]}]}';
    const s1 = TailnetSnapshot.build(rows, [], active(text), "t.internal");
    const before = s1.mapFor("id1", relayMap, dns)!;
    const s2 = s1.withRows([{ ...rows[1]!, endpoints: '["192.0.2.1:1"]', online: true }]);
    const after = s2.mapFor("id1", relayMap, dns)!;
    expect(after.peers.map((p) => p.name)).toEqual(["n002", "n003"]);
    expect(after.peers[0]).toMatchObject({ endpoints: ["192.0.2.1:1"], online: true });
    expect(after.peers[1]).toBe(before.peers[1]);
    // A rebuild reuses peer objects that did not change.
    const s3 = TailnetSnapshot.build(rows, [], active(text), "t.internal", new Date(), s1);
    expect(s3.mapFor("id1", relayMap, dns)!.peers).toEqual(before.peers);
    expect(s3.mapFor("id1", relayMap, dns)!.peers[0]).toBe(before.peers[0]);
  });

  it("lists a plain WireGuard peer as policy says, with its gateway, and gives it no peers", () => {
    const rows = [
      row(1, ["tag:gw"], { endpoints: '["10.0.0.1:41641"]' }),
      row(2, ["tag:gw"], { endpoints: '["10.0.0.2:41641"]' }),
      row(3, ["tag:a"]),
      row(4, ["tag:wg"], { wireguardOnly: true, gatewayId: "id1" }),
    ];
    const everyone = '{"acls":[{"action":"accept","src":["*"],"dst":["*:*"]}]}';
    const s = TailnetSnapshot.build(rows, [], active(everyone), "t.internal");
    const peers = (id: string) => s.mapFor(id, relayMap, dns)!.peers.map((p) => p.name);
    expect(peers("id1")).toEqual(["n002", "n003", "n004"]);
    expect(s.mapFor("id1", relayMap, dns)!.peers[2]).toMatchObject({
      isWireGuardOnly: true,
      allowedIPs: ["100.64.0.4/32", "fd7a:115c:a1e0::4/128"],
      endpoints: [],
    });
    // Other nodes list it with its gateway, through which they reach it.
    expect(peers("id2")).toEqual(["n001", "n003", "n004"]);
    expect(peers("id3")).toEqual(["n001", "n002", "n004"]);
    expect(s.mapFor("id3", relayMap, dns)!.peers[2]).toMatchObject({ isWireGuardOnly: true, gateway: "id1" });
    expect(peers("id4")).toEqual([]);
    // Its gateway's filter admits it as policy says (it is in the topology like any node).
    const wgAddr = parseAddr("100.64.0.4")!;
    expect(
      s.mapFor("id1", relayMap, dns)!.packetFilter.some((r) => r.SrcIPs.some((t) => addrSet(t)(wgAddr))),
    ).toBe(true);
    // A policy that lets it reach nothing (and nothing reach it) takes it off the gateway's list too.
    const owners = '"tagOwners":{"tag:a":[],"tag:gw":[],"tag:wg":[]}';
    const apart = `{${owners},"acls":[{"action":"accept","src":["tag:a"],"dst":["tag:gw:*"]}]}`;
    const t = TailnetSnapshot.build(rows, [], active(apart), "t.internal");
    expect(t.mapFor("id1", relayMap, dns)!.peers.map((p) => p.name)).toEqual(["n003"]);
    const toGw = `{${owners},"acls":[{"action":"accept","src":["tag:wg"],"dst":["tag:gw:*"]}]}`;
    const u = TailnetSnapshot.build(rows, [], active(toGw), "t.internal");
    // It may reach every tag:gw node: the other gateway through its own.
    expect(u.mapFor("id1", relayMap, dns)!.peers.map((p) => p.name)).toEqual(["n002", "n004"]);
    expect(u.mapFor("id2", relayMap, dns)!.peers.map((p) => p.name)).toEqual(["n001", "n004"]);
    expect(u.mapFor("id3", relayMap, dns)!.peers.map((p) => p.name)).toEqual([]);
    expect(u.sees("id3", "id4")).toBe(false);
  });

  it("routes a plain WireGuard peer's pairs through its gateway, which filters for it", () => {
    const rows = [
      row(1, ["tag:gw"], { endpoints: '["10.0.0.1:41641"]' }),
      row(2, ["tag:gw"], { endpoints: '["10.0.0.2:41641"]' }),
      row(3, ["tag:a"]),
      row(4, ["tag:wg"], { wireguardOnly: true, gatewayId: "id1" }),
      row(5, ["tag:b"]),
    ];
    const owners = '"tagOwners":{"tag:a":[],"tag:b":[],"tag:gw":[],"tag:wg":[]}';
    const build = (acls: object[]) =>
      TailnetSnapshot.build(rows, [], active(`{${owners},"acls":${JSON.stringify(acls)}}`), "t.internal");
    const names = (s: TailnetSnapshot, id: string) => s.mapFor(id, relayMap, dns)!.peers.map((p) => p.name);
    const admits = (s: TailnetSnapshot, id: string, src: string, dst: string, port: number) =>
      s
        .mapFor(id, relayMap, dns)!
        .packetFilter.some(
          (r) =>
            r.SrcIPs.some((t) => addrSet(t)(parseAddr(src)!)) &&
            r.DstPorts!.some(
              (d) => addrSet(d.IP)(parseAddr(dst)!) && d.Ports.First <= port && port <= d.Ports.Last,
            ),
        );
    const [gw, a, wg, b] = ["100.64.0.1", "100.64.0.3", "100.64.0.4", "100.64.0.5"];

    // tag:a may reach the plain peer's port 22; nothing else is allowed.
    const toWg = build([{ action: "accept", src: ["tag:a"], dst: ["tag:wg:22"] }]);
    expect(names(toWg, "id3")).toEqual(["n001", "n004"]);
    expect(names(toWg, "id1")).toEqual(["n003", "n004"]);
    expect(names(toWg, "id2")).toEqual([]);
    expect(names(toWg, "id5")).toEqual([]);
    expect(names(toWg, "id4")).toEqual([]);
    // The gateway's filter is the plain peer's: a → wg:22 only.
    expect(admits(toWg, "id1", a, wg, 22)).toBe(true);
    expect(admits(toWg, "id1", a, wg, 23)).toBe(false);
    expect(admits(toWg, "id1", b, wg, 22)).toBe(false);
    expect(admits(toWg, "id1", a, gw, 22)).toBe(false);
    expect(admits(toWg, "id1", wg, a, 22)).toBe(false);

    // The plain peer may reach tag:a's port 80: the gateway lets its packets through to a's rules.
    const fromWg = build([{ action: "accept", src: ["tag:wg"], dst: ["tag:a:80"] }]);
    expect(names(fromWg, "id1")).toEqual(["n003", "n004"]);
    expect(names(fromWg, "id3")).toEqual(["n001", "n004"]);
    expect(admits(fromWg, "id1", wg, a, 80)).toBe(true);
    expect(admits(fromWg, "id1", wg, a, 81)).toBe(false);
    expect(admits(fromWg, "id1", wg, b, 80)).toBe(false);
    expect(admits(fromWg, "id1", a, wg, 80)).toBe(false);
    expect(admits(fromWg, "id3", wg, a, 80)).toBe(true);

    // Where many machines accept it, the gateway lets it on to them under one rule per protocol list.
    const all = build([{ action: "accept", src: ["tag:wg"], dst: ["tag:a:*", "tag:b:22,80", "tag:gw:*"] }]);
    const fromPlain = all
      .mapFor("id1", relayMap, dns)!
      .packetFilter.filter((r) => r.SrcIPs.every((t) => addrSet(t)(parseAddr(wg)!) || t.includes(":")));
    expect(fromPlain.length).toBeLessThanOrEqual(2); // the gateway's own rule, and the merged one
    for (const [dst, port, ok] of [
      [a, 443, true],
      [b, 80, true],
      [b, 443, false],
      ["100.64.0.2", 1, true],
    ] as const) {
      expect(admits(all, "id1", wg, dst, port), `${dst}:${port}`).toBe(ok);
    }

    // Without a gateway taking part, the plain peer is nobody's peer.
    const gone = TailnetSnapshot.build(
      rows.filter((r) => r.id !== "id1"),
      [],
      active(`{${owners},"acls":[{"action":"accept","src":["*"],"dst":["*:*"]}]}`),
      "t.internal",
    );
    expect(names(gone, "id3")).toEqual(["n002", "n005"]);
  });

  it.each([
    ["", false],
    [" (with plain WireGuard peers)", true],
  ])(
    "gives every node the same map as a fresh build through policy-only rebuilds, patches and node changes%s",
    (_, withPlain) => {
      // A seeded walk: each step changes the policy, patches attributes, or
      // changes nodes, and each step's snapshot is built from the last one
      // (reusing what it can) and compared, node by node, with a fresh build.
      let seed = 7;
      const rand = (n: number) => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed % n;
      };
      const tags = ["tag:a", "tag:b", "tag:c", "tag:d"];
      const owners = { tagOwners: Object.fromEntries(tags.map((t) => [t, []])) };
      const policies = [
        { acls: tags.map((t) => ({ action: "accept", src: [t], dst: [`${t}:*`] })) },
        { acls: tags.map((t) => ({ action: "accept", src: [t], dst: [`${t}:22,443`] })) },
        { acls: [{ action: "accept", src: ["tag:a"], dst: ["tag:b:22"] }] },
        { acls: [{ action: "accept", src: ["*"], dst: ["tag:c:80"] }] },
        { acls: [{ action: "accept", src: ["tag:d"], dst: ["10.5.0.0/16:*", "tag:a:*"] }] },
      ].map((p, k) => ({ ...active(JSON.stringify({ ...owners, ...p })), version: k + 1 }));
      let rows = Array.from({ length: 30 }, (_, k) =>
        row(
          k + 1,
          [tags[k % tags.length]!],
          k === 5 ? { advertisedRoutes: '["10.5.0.0/24"]', approvedRoutes: '["10.5.0.0/24"]' } : {},
        ),
      );
      if (withPlain) {
        // Plain peers of two gateways (nodes 6 and 7), of every tag.
        rows = rows.map((r, k) =>
          k >= 20 && k < 26 ? { ...r, wireguardOnly: true, gatewayId: k % 2 ? "id6" : "id7" } : r,
        );
      }
      let policy = policies[0]!;
      let snap = TailnetSnapshot.build(rows, [], policy, "t.internal");
      let policyOnly = 0;
      let listsKept = 0;
      for (let step = 0; step < 60; step++) {
        // Maps of some nodes only, so later steps find some peer lists made and others not.
        const seen = new Map<string, ReturnType<TailnetSnapshot["mapFor"]>>();
        for (const r of rows) if (rand(3) > 0) seen.set(r.id, snap.mapFor(r.id, relayMap, dns));
        const kind = rand(3);
        const prev = snap;
        if (kind === 0) {
          policy = policies[rand(policies.length)]!;
          snap = TailnetSnapshot.build(rows, [], policy, "t.internal", new Date(), prev);
          if (snap.topology === prev.topology) policyOnly++;
        } else if (kind === 1) {
          const picked = new Set(Array.from({ length: 1 + rand(3) }, () => rows[rand(rows.length)]!));
          const changed = [...picked].map((r) => ({
            ...r,
            endpoints: JSON.stringify([`192.0.2.${rand(250)}:${1000 + step}`]),
            online: !r.online,
          }));
          rows = rows.map((r) => changed.find((c) => c.id === r.id) ?? r);
          snap = snap.withRows(changed);
        } else {
          const k = rand(rows.length);
          rows = rows.map((r, i) =>
            i === k
              ? { ...r, tags: JSON.stringify([tags[rand(tags.length)]]), updatedAt: new Date(step) }
              : r,
          );
          if (rand(4) === 0) rows = [...rows, row(100 + step, [tags[rand(tags.length)]!])];
          snap = TailnetSnapshot.build(rows, [], policy, "t.internal", new Date(), prev);
        }
        const fresh = TailnetSnapshot.build(rows, [], policy, "t.internal");
        for (const r of rows) {
          const got = snap.mapFor(r.id, relayMap, dns);
          expect(JSON.stringify(got), `step ${step} (${kind}), ${r.name}`).toBe(
            JSON.stringify(fresh.mapFor(r.id, relayMap, dns)),
          );
          const before = seen.get(r.id);
          if (before && got && got.peers === before.peers) listsKept++;
        }
      }
      // The walk took the fast paths it is meant to check.
      expect(policyOnly).toBeGreaterThan(5);
      expect(listsKept).toBeGreaterThan(100);
    },
  );
});
