// Validation on save: parse (HuJSON), check the shape (types.ts), check the
// meaning (model.ts), then run the policy's own `tests` and `sshTests`. Any
// problem blocks the save with a PolicyError naming line:column, the key and,
// for a failing test, the assertion that failed.
import type { Selector } from "./aliases";
import { formatPath, PolicyError, type PolicyIssue } from "./errors";
import { evaluate, evaluateSsh, nodeParty, userParty, type Destination, type Party } from "./evaluate";
import { makeLocator, parseHuJSON } from "./hujson";
import { buildPolicy, type Policy } from "./model";
import { PROTOCOLS } from "./ports";
import { addrKey, EMPTY_TOPOLOGY, type Topology } from "./topology";
import { parsePolicyDocument } from "./types";

/** Options of {@link validatePolicy}. */
export interface ValidateOptions {
  /** File name for messages (`policy.hujson:3:7: …`). */
  source?: string;
  /**
   * The tailnet the policy is for. Tests then use real users' roles and
   * nodes' identities for IP addresses; without it they run on identities alone.
   */
  topology?: Topology;
  /** Run `tests` and `sshTests` (default true). */
  runTests?: boolean;
}

type Locate = (path: readonly (string | number)[]) => { line: number; column: number } | undefined;

function located(path: (string | number)[], message: string, locate?: Locate): PolicyIssue {
  return { path: formatPath(path), message, ...(locate?.(path) ?? {}) };
}

/**
 * Parse and check a policy given as text (HuJSON) or as an already parsed
 * value (from a JSON API body). Throws a {@link PolicyError} listing every
 * syntax, shape and meaning problem; does not run the tests.
 */
export function parsePolicy(input: string | unknown, opts: Pick<ValidateOptions, "source"> = {}): Policy {
  const locate = typeof input === "string" ? makeLocator(input) : undefined;
  const value = typeof input === "string" ? parseHuJSON(input, opts.source) : input;
  const doc = parsePolicyDocument(value, locate, opts.source);
  const { policy, issues } = buildPolicy(doc);
  if (issues.length > 0) {
    throw new PolicyError(
      "semantic",
      issues.map((i) => located(i.path, i.message, locate)),
      opts.source,
    );
  }
  return policy;
}

/**
 * Validate a policy for saving: {@link parsePolicy}, then its `tests` and
 * `sshTests`. A failing assertion throws a PolicyError of kind "test" that
 * names it (e.g. `tests[1].deny[0]: … can reach tag:db:5432 through acls[2]`).
 */
export function validatePolicy(input: string | unknown, opts: ValidateOptions = {}): Policy {
  const policy = parsePolicy(input, opts);
  if (opts.runTests !== false) {
    const locate = typeof input === "string" ? makeLocator(input) : undefined;
    const failures = runPolicyTests(policy, opts.topology ?? EMPTY_TOPOLOGY, locate);
    if (failures.length > 0) throw new PolicyError("test", failures, opts.source);
  }
  return policy;
}

const PROTO_NAMES = new Map(Object.entries(PROTOCOLS).map(([name, n]) => [n, name]));

function party(sel: Selector, topology: Topology): Party {
  switch (sel.kind) {
    case "user":
      return userParty(sel.login, topology);
    case "tag":
      return { tags: [sel.name] };
    case "prefix": {
      const addr = { v: sel.prefix.v, n: sel.prefix.base };
      const node = topology.byAddr.get(addrKey(addr));
      return node ? nodeParty(node, addr) : { addr, tags: [] };
    }
    default:
      // parseSelector only lets users, tags and single addresses into tests.
      throw new Error(`internal: test selector ${sel.text}`);
  }
}

function destination(sel: Selector, topology: Topology): Destination {
  const p = party(sel, topology);
  return p.node ? { party: p, receiver: p.node } : { party: p };
}

/** Run `tests` and `sshTests`; returns one issue per failed assertion (empty when all pass). */
export function runPolicyTests(policy: Policy, topology: Topology, locate?: Locate): PolicyIssue[] {
  const failures: PolicyIssue[] = [];
  for (const t of policy.tests) {
    const src = party(t.src, topology);
    const proto = PROTO_NAMES.get(t.proto) ?? `proto ${t.proto}`;
    for (const [key, list, expect] of [
      ["accept", t.accept, true],
      ["deny", t.deny, false],
    ] as const) {
      list.forEach((d, i) => {
        const m = evaluate(policy, topology, src, destination(d.sel, topology), t.proto, d.port);
        if (!!m === expect) return;
        const msg = expect
          ? `${t.src.text} cannot reach ${d.text} (${proto}): no rule allows it, but the test expects accept`
          : `${t.src.text} can reach ${d.text} (${proto}) through ${m!.section}[${m!.index}], but the test expects deny`;
        failures.push(located(["tests", t.index, key, i], msg, locate));
      });
    }
  }
  for (const t of policy.sshTests) {
    const src = party(t.src, topology);
    t.dst.forEach((dsel, di) => {
      const dst = party(dsel, topology);
      for (const [key, users] of [
        ["accept", t.accept],
        ["check", t.check],
        ["deny", t.deny],
      ] as const) {
        users.forEach((user, i) => {
          const m = evaluateSsh(policy, src, dst, user);
          const got = m?.action ?? "deny";
          if (got === key) return;
          const via = m ? ` through ${m.section}[${m.index}]` : "";
          failures.push(
            located(
              ["sshTests", t.index, key, i],
              `ssh from ${t.src.text} to ${dsel.text} as "${user}" is ${got === "deny" ? "denied" : `"${got}"`}${via}, but the test expects ${key} (dst[${di}])`,
              locate,
            ),
          );
        });
      }
    });
  }
  return failures;
}
