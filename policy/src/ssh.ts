// Compilation of `ssh` rules into per-node SSH policies in the shape of
// Tailscale's tailcfg.SSHRule. A node receives the rules whose destinations
// include it. Tagged nodes accept every listed source; a user's own devices
// accept only that user's devices, which is how Tailscale keeps one member
// from logging in to another member's machine.
import { domainOf, Resolver, type Selector } from "./aliases";
import { compareAddr } from "@trellis/proto/ip";
import type { Policy, SshRuleModel } from "./model";
import type { NodeInfo, Topology, UserInfo } from "./topology";

/** Who may connect, as Tailscale's `tailcfg.SSHPrincipal`: one node address, or anyone. */
export interface SSHPrincipal {
  nodeIP?: string;
  any?: boolean;
}

/** What happens to a matching connection, as Tailscale's `tailcfg.SSHAction`. */
export interface SSHAction {
  accept?: boolean;
  /** For `check`: URL the node asks before accepting; `$SRC_NODE_IP`-style variables are filled in by the node. */
  holdAndDelegate?: string;
  /** How long a successful check lasts, in nanoseconds (Go's time.Duration); absent means check every time. */
  sessionDuration?: number;
  allowAgentForwarding?: boolean;
  allowLocalPortForwarding?: boolean;
  allowRemotePortForwarding?: boolean;
}

/**
 * One SSH rule, as Tailscale's `tailcfg.SSHRule`. `sshUsers` maps the
 * requested login to a local user: a name to itself, `"*": "="` for any
 * name to itself (autogroup:nonroot), and `"root": ""` to refuse root.
 */
export interface SSHRule {
  principals: SSHPrincipal[];
  sshUsers: Record<string, string>;
  action: SSHAction;
  acceptEnv?: string[];
}

/** SSH rules by node name. */
export type SshPolicies = Record<string, SSHRule[]>;

/** Options of SSH compilation. */
export interface SshOptions {
  /**
   * `holdAndDelegate` URL of `check` rules. The node substitutes
   * `$SRC_NODE_IP`, `$SRC_NODE_ID`, `$DST_NODE_IP`, `$DST_NODE_ID`, `$SSH_USER`
   * and `$LOCAL_USER`, and resolves a relative URL against its control server.
   */
  checkUrl?: string;
}

/** Default check URL, relative to the control server. */
export const DEFAULT_CHECK_URL =
  "/api/ssh/check?src=$SRC_NODE_ID&dst=$DST_NODE_ID&src_ip=$SRC_NODE_IP&ssh_user=$SSH_USER&local_user=$LOCAL_USER";

function sshUsers(rule: SshRuleModel): Record<string, string> {
  const map: Record<string, string> = {};
  for (const u of rule.users) map[u] = u;
  if (rule.nonroot) {
    map["*"] = "=";
    if (!rule.users.includes("root")) map.root = "";
  }
  // Sorted keys, as Go's encoding/json writes maps.
  return Object.fromEntries(Object.entries(map).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function action(rule: SshRuleModel, opts: SshOptions): SSHAction {
  if (rule.action === "accept") {
    return {
      accept: true,
      allowAgentForwarding: true,
      allowLocalPortForwarding: true,
      allowRemotePortForwarding: true,
    };
  }
  const a: SSHAction = {
    holdAndDelegate: opts.checkUrl ?? DEFAULT_CHECK_URL,
    allowAgentForwarding: true,
    allowLocalPortForwarding: true,
    allowRemotePortForwarding: true,
  };
  if (rule.checkPeriodMs > 0) a.sessionDuration = Math.round(rule.checkPeriodMs * 1_000_000);
  return a;
}

/** The local part of a login email, which a `localpart:*@<domain>` rule lets its user log in as. */
export function localpartOf(email: string, domains: readonly string[]): string | undefined {
  const at = email.lastIndexOf("@");
  return at > 0 && domains.includes(domainOf(email)) ? email.slice(0, at) : undefined;
}

/** Compile the SSH rules of every node: `{ "<node name>": SSHRule[] }`. */
export function compileSsh(policy: Policy, topology: Topology, opts: SshOptions = {}): SshPolicies {
  if (policy.ssh.length === 0) return Object.fromEntries(topology.nodes.map((n) => [n.name, []]));
  const resolver = new Resolver(policy.names, topology);
  const compiled = policy.ssh.map((rule) => ({
    rule,
    users: sshUsers(rule),
    action: action(rule, opts),
    anySrc: rule.src.some((s) => s.kind === "any"),
    srcNodes: new Set(rule.src.flatMap((s) => (s.kind === "any" ? [] : resolver.nodes(s)))),
    // Destinations that are tagged devices, and those that are users' own devices.
    taggedDst: new Set(rule.dst.filter(isTaggedKind).flatMap((s) => resolver.nodes(s))),
    selfDst: rule.dst.some(isSelf),
    ownedDst: new Set(
      rule.dst.filter((s) => !isTaggedKind(s) && !isSelf(s)).flatMap((s) => resolver.nodes(s)),
    ),
  }));
  const principalsOf = (nodes: Iterable<NodeInfo>): SSHPrincipal[] =>
    [...nodes]
      .flatMap((n) => n.addrs.map((a, i) => ({ a, text: n.ipStrs[i]! })))
      .sort((x, y) => compareAddr(x.a, y.a))
      .map((x) => ({ nodeIP: x.text }));

  const out: SshPolicies = {};
  for (const node of topology.nodes) {
    const rules: SSHRule[] = [];
    for (const c of compiled) {
      const push = (principals: SSHPrincipal[], sshUsers: Record<string, string>) => {
        if (principals.length === 0 || Object.keys(sshUsers).length === 0) return;
        const r: SSHRule = { principals, sshUsers, action: c.action };
        if (c.rule.acceptEnv?.length) r.acceptEnv = c.rule.acceptEnv;
        rules.push(r);
      };
      // A localpart:*@<domain> user maps to one login per user, so each
      // source user gets their own rule after the rule's listed users, as
      // Tailscale emits them; tagged sources have no login and no local part.
      const localpart = (owner: UserInfo, nodes: readonly NodeInfo[]) => {
        const lp = localpartOf(owner.email, c.rule.localparts);
        if (lp !== undefined) push(principalsOf(nodes), { [lp]: lp });
      };
      if (node.tagged) {
        if (!c.taggedDst.has(node)) continue;
        if (c.rule.localparts.length === 0) {
          push(c.anySrc ? [{ any: true }] : principalsOf(c.srcNodes), c.users);
        } else if (c.anySrc) {
          push([{ any: true }], c.users);
          for (const u of topology.users) localpart(u, resolver.nodesOfUser(u));
        } else {
          for (const u of topology.users) {
            const mine = resolver.nodesOfUser(u).filter((n) => c.srcNodes.has(n));
            if (mine.length === 0) continue;
            push(principalsOf(mine), c.users);
            localpart(u, mine);
          }
          push(principalsOf([...c.srcNodes].filter((n) => n.tagged)), c.users);
        }
      } else {
        const owner = node.user;
        if (!owner || !(c.selfDst || c.ownedDst.has(node))) continue;
        const mine = resolver.nodesOfUser(owner).filter((n) => c.anySrc || c.srcNodes.has(n));
        push(principalsOf(mine), c.users);
        if (mine.length > 0) localpart(owner, mine);
      }
    }
    // Tailscale puts a destination's check rules before its accept rules,
    // so an accept earlier in the policy cannot skip a check.
    out[node.name] = [
      ...rules.filter((r) => r.action.holdAndDelegate),
      ...rules.filter((r) => !r.action.holdAndDelegate),
    ];
  }
  return out;
}

function isTaggedKind(s: Selector): boolean {
  return s.kind === "tag" || (s.kind === "autogroup" && s.name === "tagged");
}

function isSelf(s: Selector): boolean {
  return s.kind === "autogroup" && s.name === "self";
}
