// Table-driven tests: one data file per documented behaviour in testdata/.
//   filters/*.hujson  policy (+ topology) → expected per-node FilterRules and reachability answers
//   ssh/*.hujson      policy → expected per-node SSHRules and ssh answers
//   errors/*.hujson   a policy file that must be refused; `// expect:` lines give the messages
//                     (*.hujson.txt for files with syntax errors, which formatters would choke on)
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  canReach,
  compileFilters,
  compileSsh,
  evaluateSsh,
  matchFilter,
  nodeParty,
  parseHuJSON,
  parseTopology,
  PolicyError,
  validatePolicy,
  type FilterRule,
  type SSHRule,
  type Topology,
} from "./index";
import { parseAddr } from "@trellis/proto/ip";

const DATA = join(import.meta.dirname, "testdata");
const defaultTopology = parseTopology(JSON.parse(readFileSync(join(DATA, "topology.json"), "utf8")));

function cases(dir: string): [string, Record<string, unknown>][] {
  return readdirSync(join(DATA, dir))
    .filter((f) => f.endsWith(".hujson"))
    .sort()
    .map((f) => [f, parseHuJSON(readFileSync(join(DATA, dir, f), "utf8"), f) as Record<string, unknown>]);
}

function topologyOf(c: Record<string, unknown>): Topology {
  return c.topology ? parseTopology(c.topology) : defaultTopology;
}

interface ReachCase {
  src: string;
  dst: string;
  port: number;
  proto?: string;
  via?: string;
  allowed: boolean;
  rule?: string;
}

describe("policy filters (testdata/filters)", () => {
  for (const [file, c] of cases("filters")) {
    it(`${file}: ${String(c.doc)}`, () => {
      const topology = topologyOf(c);
      const policy = validatePolicy(c.policy, { topology });
      const filters = compileFilters(policy, topology);
      // Every node appears, in name order, and compiling twice gives the same bytes.
      expect(Object.keys(filters)).toEqual(topology.nodes.map((n) => n.name));
      expect(JSON.stringify(compileFilters(policy, topology))).toBe(JSON.stringify(filters));

      const expected = (c.filters ?? {}) as Record<string, FilterRule[]>;
      for (const [node, rules] of Object.entries(expected)) expect(filters[node], node).toEqual(rules);
      if (!c.partial) {
        for (const n of topology.nodes)
          if (!(n.name in expected)) expect(filters[n.name], n.name).toEqual([]);
      }
      const dstIPs = (node: string) =>
        new Set(filters[node]!.flatMap((r) => (r.DstPorts ?? []).map((d) => d.IP)));
      for (const [node, ips] of Object.entries((c.dstIPsInclude ?? {}) as Record<string, string[]>)) {
        for (const ip of ips) expect(dstIPs(node).has(ip), `${node} has ${ip}`).toBe(true);
      }
      for (const [node, ips] of Object.entries((c.dstIPsExclude ?? {}) as Record<string, string[]>)) {
        for (const ip of ips) expect(dstIPs(node).has(ip), `${node} lacks ${ip}`).toBe(false);
      }

      for (const q of (c.reach ?? []) as ReachCase[]) {
        const label = `${q.src} → ${q.dst}:${q.port}/${q.proto ?? "tcp"}${q.via ? ` via ${q.via}` : ""}`;
        const answer = canReach(policy, topology, q);
        expect(answer.allowed, `${label}: ${answer.reason}`).toBe(q.allowed);
        if (q.rule) expect(`${answer.rule?.section}[${answer.rule?.index}]`, label).toBe(q.rule);
        // The compiled filter on the deciding node gives the same answer.
        if (answer.receiver && answer.srcIp && answer.dstIp) {
          const proto = { tcp: 6, udp: 17, icmp: 1, gre: 47, esp: 50 }[q.proto ?? "tcp"]!;
          const hit = matchFilter(filters[answer.receiver]!, {
            src: parseAddr(answer.srcIp)!,
            dst: parseAddr(answer.dstIp)!,
            proto,
            port: q.port,
          });
          expect(hit >= 0, `${label}: compiled filter of ${answer.receiver}`).toBe(q.allowed);
        }
      }
    });
  }
});

interface SshReachCase {
  src: string;
  dst: string;
  user: string;
  action: "accept" | "check" | null;
}

/** What the compiled SSH rules of `dst` do for a connection from `srcIps` as `user` (first match wins, as on nodes). */
function compiledSshAction(
  rules: SSHRule[],
  srcIps: readonly string[],
  user: string,
): "accept" | "check" | null {
  for (const r of rules) {
    if (!r.principals.some((p) => p.any || (p.nodeIP !== undefined && srcIps.includes(p.nodeIP)))) continue;
    const mapped = r.sshUsers[user] ?? r.sshUsers["*"];
    if (!mapped) continue;
    return r.action.accept ? "accept" : "check";
  }
  return null;
}

describe("ssh rules (testdata/ssh)", () => {
  for (const [file, c] of cases("ssh")) {
    it(`${file}: ${String(c.doc)}`, () => {
      const topology = topologyOf(c);
      const policy = validatePolicy(c.policy, { topology });
      const ssh = compileSsh(policy, topology);
      expect(Object.keys(ssh)).toEqual(topology.nodes.map((n) => n.name));
      const expected = (c.ssh ?? {}) as Record<string, SSHRule[]>;
      for (const [node, rules] of Object.entries(expected)) expect(ssh[node], node).toEqual(rules);
      if (!c.partial) {
        for (const n of topology.nodes) if (!(n.name in expected)) expect(ssh[n.name], n.name).toEqual([]);
      }
      for (const q of (c.sshReach ?? []) as SshReachCase[]) {
        const src = topology.byName.get(q.src)!;
        const dst = topology.byName.get(q.dst)!;
        const label = `${q.src} → ${q.dst} as ${q.user}`;
        expect(evaluateSsh(policy, nodeParty(src), nodeParty(dst), q.user)?.action ?? null, label).toBe(
          q.action,
        );
        expect(compiledSshAction(ssh[q.dst]!, src.ipStrs, q.user), `${label} (compiled)`).toBe(q.action);
      }
    });
  }
});

describe("policy errors (testdata/errors)", () => {
  // Files with syntax errors are named *.hujson.txt so that formatters leave them broken.
  for (const f of readdirSync(join(DATA, "errors"))
    .filter((x) => x.endsWith(".hujson") || x.endsWith(".hujson.txt"))
    .sort()) {
    it(f, () => {
      const text = readFileSync(join(DATA, "errors", f), "utf8");
      const expects = [...text.matchAll(/^\/\/ expect: (.*)$/gm)].map((m) => m[1]!);
      const kind = /^\/\/ kind: (\w+)$/m.exec(text)?.[1];
      expect(expects.length).toBeGreaterThan(0);
      let error: unknown;
      try {
        validatePolicy(text, { topology: defaultTopology });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(PolicyError);
      const err = error as PolicyError;
      if (kind) expect(err.kind).toBe(kind);
      for (const e of expects) expect(err.message).toContain(e);
      // Every issue names a place in the document and, from text, a line and column.
      for (const issue of err.problems) {
        expect(issue.line, issue.message).toBeGreaterThan(0);
        expect(issue.column, issue.message).toBeGreaterThan(0);
      }
      expect(err.code).toMatch(/^policy_/);
    });
  }
});
