// Property test: for random small policies and topologies, the compiled
// packet filters and SSH rules agree with direct evaluation of the policy.
// fast-check drives it with a fixed seed, so a failure reproduces exactly;
// each run builds its case from one integer with a small PRNG of its own.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  compileFilters,
  compileSsh,
  evaluate,
  evaluateSsh,
  matchFilter,
  nodeParty,
  parseTopology,
  validatePolicy,
  type Party,
  type SSHRule,
} from "./index";
import { formatAddr, parseAddr, type Addr } from "@trellis/proto/ip";

/** mulberry32: tiny, fast, good enough to pick test shapes. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const some = <T>(xs: readonly T[], min: number, max: number): T[] =>
    Array.from({ length: min + int(max - min + 1) }, () => pick(xs));
  return { next, int, pick, some };
}

const TAGS = ["tag:a", "tag:b", "tag:c"];
const ROUTES = ["10.0.0.0/24", "10.0.1.0/24", "10.0.0.0/16", "fd00::/64"];

function randomCase(seed: number) {
  const r = prng(seed);
  const users = Array.from({ length: 2 + r.int(3) }, (_, i) => ({
    id: i,
    name: `u${i}`,
    email: `u${i}@${i % 2 === 0 ? "example.com" : "example.org"}`,
    role: r.pick(["admin", "member", "auditor"] as const),
  }));
  const nodes: Record<string, unknown> = {};
  const n = 3 + r.int(6);
  for (let i = 1; i <= n; i++) {
    const tagged = r.next() < 0.35;
    const family = r.int(5); // 0: v4 only, 1: v6 only, else both
    const advertised = r.next() < 0.3 ? r.some(ROUTES, 1, 2) : [];
    if (r.next() < 0.15) advertised.push("0.0.0.0/0", "::/0");
    nodes[`n${i}`] = {
      tags: tagged ? [...new Set(r.some(TAGS, 1, 2))] : [],
      ...(family !== 1 ? { ipv4: `100.64.0.${i}` } : {}),
      ...(family !== 0 ? { ipv6: `fd7a:115c:a1e0::${i}` } : {}),
      user: tagged ? null : r.pick(users).name,
      routable_ips: [...new Set(advertised)],
      approved_routes: [...new Set(advertised)].filter(() => r.next() < 0.7),
    };
  }
  const logins = users.flatMap((u) => [u.email, `${u.name}@`]);
  const srcPool = [
    "*",
    ...logins,
    "group:g1",
    "group:g2",
    ...TAGS,
    "autogroup:member",
    "autogroup:tagged",
    "autogroup:admin",
    "autogroup:auditor",
    "100.64.0.0/30",
    "fd7a:115c:a1e0::/126",
    "10.0.0.0/24",
    "h1",
    "100.64.0.2",
    "autogroup:danger-all",
    "user:*@example.com",
    "user:*@example.org",
  ];
  const dstPool = [
    ...srcPool.filter((s) => s !== "autogroup:danger-all"),
    "autogroup:self",
    "autogroup:internet",
    "10.0.0.0/8",
    "fd00::/60",
    "10.0.1.128/25",
  ];
  const portPool = ["*", "22", "80,443", "1000-2000", "22,5000-6000"];
  // autogroup:self needs sources with users (in acls "*" too), or the policy is refused.
  const userLike = (s: string, acl: boolean) =>
    s.includes("@") ||
    s.startsWith("group:") ||
    ["autogroup:member", "autogroup:admin", "autogroup:auditor"].includes(s) ||
    (acl && s === "*");
  const forSelf = (src: string[], dst: string[], acl: boolean) => {
    if (!dst.includes("autogroup:self")) return src;
    const kept = src.filter((s) => userLike(s, acl));
    return kept.length > 0 ? kept : ["autogroup:member"];
  };
  const acls = Array.from({ length: 1 + r.int(4) }, () => {
    const proto = r.pick([undefined, undefined, "tcp", "udp", "icmp", "gre"]);
    const portless = proto === "icmp" || proto === "gre";
    const dst = r.some(dstPool, 1, 3);
    return {
      action: "accept",
      src: forSelf(r.some(srcPool, 1, 3), dst, true),
      ...(proto ? { proto } : {}),
      dst: dst.map((d) => `${d}:${portless ? "*" : r.pick(portPool)}`),
    };
  });
  const grants = Array.from({ length: r.int(3) }, () => {
    const via = r.next() < 0.3;
    const dst = via ? r.some(["10.0.0.0/8", "fd00::/60", "autogroup:internet"], 1, 2) : r.some(dstPool, 1, 2);
    // Capabilities (with their companions) ride along; they must not change which packets pass.
    const app =
      r.next() < 0.3 && !dst.includes("autogroup:internet")
        ? { [r.pick(["tailscale.com/cap/relay", "tailscale.com/cap/drive", "example.com/cap/x"])]: [{}] }
        : undefined;
    return {
      src: forSelf(r.some(srcPool, 1, 2), dst, false),
      dst,
      ip: r.some(["*", "tcp:22", "udp:53", "443", "icmp:*", "tcp:1000-1500"], 1, 3),
      ...(app ? { app } : {}),
      ...(via ? { via: [r.pick(TAGS)] } : {}),
    };
  });
  const ssh = Array.from({ length: r.int(3) }, () => ({
    action: r.pick(["accept", "check"]),
    src: r.some(
      ["*", ...logins, "group:g1", ...TAGS, "autogroup:member", "autogroup:tagged", "user:*@example.org"],
      1,
      2,
    ),
    dst: r.some(
      [
        ...TAGS,
        "autogroup:self",
        "autogroup:member",
        "autogroup:tagged",
        "group:g2",
        logins[0]!,
        "user:*@example.com",
      ],
      1,
      2,
    ),
    users: r.some(["root", "ubuntu", "autogroup:nonroot", "localpart:*@example.com"], 1, 2),
  }));
  const policy = {
    groups: { "group:g1": r.some(logins, 0, 2), "group:g2": r.some(logins, 1, 3) },
    hosts: { h1: r.pick(["100.64.0.1", "10.0.0.0/24", "fd7a:115c:a1e0::3"]) },
    tagOwners: Object.fromEntries(TAGS.map((t) => [t, []])),
    acls,
    grants,
    ssh,
  };
  return { policy, topologyInput: { users, nodes }, r };
}

const PROTOS = [6, 17, 1, 58, 47];
const PORTS = [0, 22, 53, 80, 443, 1200, 5500, 65535];

describe("compiled filters agree with direct evaluation", () => {
  it("on 300 random policies and topologies", () => {
    const seen = { allowed: 0, denied: 0 };
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), (seed) => {
        const { policy: doc, topologyInput, r } = randomCase(seed);
        const topology = parseTopology(topologyInput);
        const policy = validatePolicy(doc, { topology });
        const filters = compileFilters(policy, topology);
        const ssh = compileSsh(policy, topology);

        // Sources: every node address, hosts behind the subnet routes (inside "*" when a
        // route is approved), and addresses "*" never covers: a LAN no route serves, the
        // ChromeOS block, the internet.
        const sources: { party: Party; addr: Addr }[] = topology.nodes.flatMap((n) =>
          n.addrs.map((addr) => ({ party: nodeParty(n, addr), addr })),
        );
        for (const text of ["10.0.0.7", "fd00::7", "192.168.9.9", "100.115.92.9", "2001:db8::9"]) {
          const addr = parseAddr(text)!;
          sources.push({ party: { addr, tags: [] }, addr });
        }
        // Destinations each node receives: its own addresses, an address in each approved route, internet if exit.
        const landings = topology.nodes.flatMap((n) => {
          const addrs: Addr[] = [...n.addrs];
          for (const p of n.routes) addrs.push({ v: p.v, n: p.base + 5n });
          if (n.exit4) addrs.push(parseAddr("8.8.8.8")!);
          if (n.exit6) addrs.push(parseAddr("2001:4860::8888")!);
          return addrs.map((dst) => ({ node: n, dst }));
        });

        for (let i = 0; i < 150; i++) {
          const { party: src, addr: srcAddr } = r.pick(sources);
          const { node, dst } = r.pick(landings);
          if (srcAddr.v !== dst.v) continue;
          const proto = r.pick(PROTOS);
          const port = r.pick(PORTS);
          const owner = topology.byAddr.get(`${dst.v}:${dst.n.toString(16)}`);
          const dstParty = owner ? nodeParty(owner, dst) : { addr: dst, tags: [] };
          const want = evaluate(policy, topology, src, { party: dstParty, receiver: node }, proto, port);
          const got = matchFilter(filters[node.name]!, { src: srcAddr, dst, proto, port });
          seen[got >= 0 ? "allowed" : "denied"]++;
          if (got >= 0 !== (want !== null)) {
            throw new Error(
              `seed ${seed}: ${formatAddr(srcAddr)} → ${formatAddr(dst)} at ${node.name}, proto ${proto} port ${port}: ` +
                `evaluate says ${want ? `${want.section}[${want.index}]` : "deny"}, filter says ${got >= 0 ? "allow" : "deny"}\n` +
                `policy: ${JSON.stringify(doc)}\ntopology: ${JSON.stringify(topologyInput)}\n` +
                `filter: ${JSON.stringify(filters[node.name])}`,
            );
          }
        }

        for (const src of topology.nodes) {
          for (const dst of topology.nodes) {
            // u0 and u1 are local parts of users of example.com and example.org.
            for (const user of ["root", "ubuntu", "u0", "u1"]) {
              const want = evaluateSsh(policy, nodeParty(src), nodeParty(dst), user)?.action ?? null;
              const got = compiledSsh(ssh[dst.name]!, src.ipStrs, user);
              expect(got, `seed ${seed}: ssh ${src.name} → ${dst.name} as ${user}`).toBe(want);
            }
          }
        }
      }),
      { seed: 20260611, numRuns: 300 },
    );
    // The generator must produce both outcomes in quantity, or the agreement means little.
    expect(seen.allowed).toBeGreaterThan(2000);
    expect(seen.denied).toBeGreaterThan(2000);
  });
});

function compiledSsh(rules: SSHRule[], srcIps: readonly string[], user: string): "accept" | "check" | null {
  for (const rule of rules) {
    if (!rule.principals.some((p) => p.any || (p.nodeIP !== undefined && srcIps.includes(p.nodeIP))))
      continue;
    if (!(rule.sshUsers[user] ?? rule.sshUsers["*"])) continue;
    return rule.action.accept ? "accept" : "check";
  }
  return null;
}
