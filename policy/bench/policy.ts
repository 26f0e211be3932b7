// npm run bench -- policy [--json]
// Policy compilation at scale: a generated tailnet of 10,000 nodes (users'
// devices, tagged servers, subnet routers, exit nodes) and a policy of 1,000
// rules (acls and grants over users, groups, tags, hosts, CIDRs, autogroups),
// compiled to a packet filter for every node. Target: compile_ms under 1000.
// Then per-packet matching on the node with the largest filter: the
// CompiledFilter nodes use (integer ranges, addresses straight from packet
// bytes) against, in the same run, the bigint-per-rule matcher it replaced.
import {
  CompiledFilter,
  compileFilters,
  parseTopology,
  validatePolicy,
  type FilterRule,
  type TopologyInput,
} from "@trellis/policy";
import { addrBytes, lastAddr, parseAddr, parsePrefix, type Addr } from "@trellis/proto/ip";
import { report, type Figures } from "../../scripts/lib/bench";

const json = process.argv.includes("--json");
const NODES = 10_000;
const RULES = 1_000;
const USERS = 1_000;
const TAGS = 50;
const GROUPS = 100;

// A fixed seed: every run measures the same tailnet and policy.
let state = 0x5eed;
function rand(): number {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (n: number) => Math.floor(rand() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
const some = <T>(xs: readonly T[], min: number, max: number): T[] =>
  Array.from({ length: min + int(max - min + 1) }, () => pick(xs));

function generateTopology(): TopologyInput {
  const users = Array.from({ length: USERS }, (_, i) => ({
    id: `u${i}`,
    name: `user${i}`,
    email: `user${i}@example.com`,
    role: i % 50 === 0 ? ("admin" as const) : ("member" as const),
  }));
  const nodes: TopologyInput["nodes"] = {};
  for (let i = 0; i < NODES; i++) {
    const v4 = `100.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
    const v6 = `fd7a:115c:a1e0::${i.toString(16)}`;
    const routes = i < 50 ? [`10.${i}.0.0/16`] : i < 60 ? ["0.0.0.0/0", "::/0"] : [];
    const tagged = i < 60 || rand() < 0.3;
    nodes[`node-${String(i).padStart(5, "0")}`] = {
      hostname: `node-${i}`,
      tags: tagged
        ? [
            ...new Set(
              some(
                Array.from({ length: TAGS }, (_, t) => `tag:t${t}`),
                1,
                2,
              ),
            ),
          ]
        : [],
      ipv4: v4,
      ipv6: v6,
      user: tagged ? null : `user${int(USERS)}`,
      routable_ips: routes,
      approved_routes: routes,
    };
  }
  return { users, nodes };
}

function generatePolicy() {
  const tags = Array.from({ length: TAGS }, (_, t) => `tag:t${t}`);
  const groups = Array.from({ length: GROUPS }, (_, g) => `group:g${g}`);
  const logins = Array.from({ length: USERS }, (_, i) => `user${i}@example.com`);
  const hosts = Object.fromEntries(Array.from({ length: 20 }, (_, h) => [`host${h}`, `100.64.${h}.0/24`]));
  const src = [
    ...logins.slice(0, 200),
    ...groups,
    ...tags,
    "autogroup:member",
    "autogroup:admin",
    "host3",
    "10.5.0.0/16",
  ];
  const dst = [
    ...tags,
    ...groups.slice(0, 30),
    ...logins.slice(0, 50),
    "host7",
    "10.0.0.0/8",
    "10.12.0.0/16",
  ];
  const ports = ["22", "80,443", "5432", "8000-8999", "*", "53"];
  const acls = [];
  const grants = [];
  for (let r = 0; r < RULES; r++) {
    if (r % 10 === 9) {
      grants.push({
        src: some(src, 1, 3),
        dst: some(dst, 1, 3),
        ip: some(["tcp:443", "udp:53", "*", "icmp:*"], 1, 2),
      });
      continue;
    }
    const d = some(dst, 1, 3).map((x) => `${x}:${pick(ports)}`);
    if (r % 100 === 0) d.push("autogroup:self:*");
    if (r % 250 === 1) d.push("autogroup:internet:*");
    let s = some(src, 1, 3);
    // autogroup:self takes users only (as in Tailscale): drop the tags, hosts and CIDRs.
    if (r % 100 === 0) {
      s = s.filter((x) => x.includes("@") || x.startsWith("group:") || x.startsWith("autogroup:"));
      if (s.length === 0) s = ["autogroup:member"];
    }
    acls.push({ action: "accept", src: s, ...(r % 7 === 0 ? { proto: "tcp" } : {}), dst: d });
  }
  return {
    groups: Object.fromEntries(groups.map((g) => [g, some(logins, 5, 30)])),
    hosts,
    tagOwners: Object.fromEntries(tags.map((t) => [t, ["autogroup:admin"]])),
    acls,
    grants,
  };
}

const topoInput = generateTopology();
const doc = generatePolicy();

let t0 = performance.now();
const topology = parseTopology(topoInput);
const topologyMs = performance.now() - t0;
t0 = performance.now();
const policy = validatePolicy(doc, { topology });
const parseMs = performance.now() - t0;

// Best of three full compilations: the least disturbed by other load on a shared machine.
let compileMs = Infinity;
let filters: ReturnType<typeof compileFilters> = {};
for (let i = 0; i < 3; i++) {
  t0 = performance.now();
  filters = compileFilters(policy, topology);
  compileMs = Math.min(compileMs, performance.now() - t0);
}
const filterRules = Object.values(filters).reduce((n, rules) => n + rules.length, 0);
t0 = performance.now();
const jsonBytes = Object.values(filters).reduce((n, rules) => n + JSON.stringify(rules).length, 0);
const serializeMs = performance.now() - t0;

// --- Per-packet matching -------------------------------------------------------

/** The matcher before CompiledFilter (the baseline): each rule's addresses parsed to bigint predicates. */
function bigintMatcher(rules: readonly FilterRule[]) {
  const cache = new Map<string, (a: Addr) => boolean>();
  const set = (text: string) => {
    let f = cache.get(text);
    if (f) return f;
    if (text === "*") f = () => true;
    else if (text.includes("-")) {
      const [lo, hi] = text.split("-").map((x) => parseAddr(x)!);
      f = (a) => a.v === lo!.v && a.n >= lo!.n && a.n <= hi!.n;
    } else {
      const p = parsePrefix(text)!;
      const last = lastAddr(p);
      f = (a) => a.v === p.v && a.n >= p.base && a.n <= last;
    }
    cache.set(text, f);
    return f;
  };
  return (src: Addr, dst: Addr, proto: number, port: number): number => {
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!;
      if (!r.DstPorts?.length) continue;
      if (!(r.IPProto?.length ? r.IPProto : [6, 17, 1, 58]).includes(proto)) continue;
      if (!r.SrcIPs.some((s) => set(s)(src))) continue;
      for (const d of r.DstPorts)
        if (set(d.IP)(dst) && port >= d.Ports.First && port <= d.Ports.Last) return i;
    }
    return -1;
  };
}

const [busiest, busiestRules] = Object.entries(filters).sort((a, b) => b[1].length - a[1].length)[0]!;
const self = topology.byName.get(busiest)!.addrs[0]!;
const PACKETS = 20_000;
const packets = Array.from({ length: PACKETS }, () => {
  const src = topology.nodes[int(topology.nodes.length)]!.addrs[0]!;
  return {
    src,
    dst: self,
    srcBytes: addrBytes(src),
    dstBytes: addrBytes(self),
    port: pick([22, 80, 443, 5432, 8080, 53]),
  };
});
const compiled = CompiledFilter.compile(busiestRules);
const reference = bigintMatcher(busiestRules);
let agree = 0;
for (const p of packets)
  if (compiled.match(p.srcBytes, p.dstBytes, 6, p.port) === reference(p.src, p.dst, 6, p.port)) agree++;
if (agree !== PACKETS) throw new Error(`the matchers disagree on ${PACKETS - agree} packets`);
const rate = (fn: () => void) => {
  let best = 0;
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    fn();
    best = Math.max(best, PACKETS / ((performance.now() - t) / 1000));
  }
  return best;
};
const compiledPps = rate(() => {
  for (const p of packets) compiled.match(p.srcBytes, p.dstBytes, 6, p.port);
});
const bigintPps = rate(() => {
  for (const p of packets) reference(p.src, p.dst, 6, p.port);
});

const figures: Figures = {
  nodes: topology.nodes.length,
  rules: policy.rules.length,
  compile_ms: compileMs,
  topology_ms: topologyMs,
  parse_ms: parseMs,
  filter_rules: filterRules,
  filter_rules_per_node: filterRules / topology.nodes.length,
  json_mb: jsonBytes / 1e6,
  serialize_ms: serializeMs,
  match_filter_rules: busiestRules.length,
  match_pps: compiledPps,
  match_bigint_pps: bigintPps,
  match_ratio: compiledPps / bigintPps,
};
report("policy", figures, json);
