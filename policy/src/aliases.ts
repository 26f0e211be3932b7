// Selectors ("aliases" in Tailscale's docs): the words a policy uses for sets
// of devices and addresses. Parsing decides what a word is; resolution turns
// it into nodes and addresses of a topology. Identity rules follow Tailscale:
// user-based selectors match only untagged nodes, because a tagged node's
// identity is its tags and it has no user.
import { isSingle, parsePrefix, prefixContains, type Prefix } from "@trellis/proto/ip";
import type { Parsed } from "./ports";
import { addrKey, type NodeInfo, type Role, type Topology, type UserInfo } from "./topology";

/** The autogroups Trellis understands. */
export const AUTOGROUPS = [
  "member",
  "tagged",
  "self",
  "internet",
  "admin",
  "auditor",
  "nonroot",
  "danger-all",
] as const;
export type AutogroupName = (typeof AUTOGROUPS)[number];

/** A parsed selector. `text` is the word as written, for messages. */
export type Selector =
  | { kind: "any"; text: string }
  | { kind: "user"; login: string; text: string }
  /** `user:*@<domain>`: every user whose login email is in the domain. */
  | { kind: "domain"; domain: string; text: string }
  | { kind: "group"; name: string; text: string }
  | { kind: "tag"; name: string; text: string }
  /** An IP, CIDR or host alias (then `host` is the alias name). */
  | { kind: "prefix"; prefix: Prefix; host?: string; text: string }
  | { kind: "autogroup"; name: AutogroupName; text: string };

/** Where a selector appears; each place allows different kinds. */
export type SelectorPlace =
  | "src"
  | "dst"
  | "via"
  | "sshSrc"
  | "sshDst"
  | "tagOwner"
  | "groupMember"
  | "autoApprover"
  | "nodeAttr"
  | "testSrc"
  | "testDst";

/** The names a policy defines, which selectors refer to. */
export interface PolicyNames {
  /** Group name → member logins. */
  readonly groups: ReadonlyMap<string, readonly string[]>;
  readonly hosts: ReadonlyMap<string, Prefix>;
  /** Tags defined in tagOwners. */
  readonly tags: ReadonlySet<string>;
}

/** Tag names: `tag:` then a letter, then letters, digits and dashes (Tailscale's rule). */
export const TAG_RE = /^tag:[A-Za-z][A-Za-z0-9-]*$/;
/** Group names: `group:` then letters, digits, dashes, dots, underscores. */
export const GROUP_RE = /^group:[A-Za-z0-9][A-Za-z0-9._-]*$/;
/** Host alias names: no colon, at sign or slash, so they cannot be mistaken for anything else. */
export const HOST_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

type Kind = Selector["kind"] | `autogroup:${AutogroupName}`;

const ALLOWED: Record<SelectorPlace, readonly Kind[]> = {
  src: [
    "any",
    "user",
    "domain",
    "group",
    "tag",
    "prefix",
    "autogroup:member",
    "autogroup:tagged",
    "autogroup:admin",
    "autogroup:auditor",
    "autogroup:danger-all",
  ],
  dst: [
    "any",
    "user",
    "domain",
    "group",
    "tag",
    "prefix",
    "autogroup:member",
    "autogroup:tagged",
    "autogroup:self",
    "autogroup:internet",
    "autogroup:admin",
    "autogroup:auditor",
  ],
  via: ["tag"],
  sshSrc: [
    "any",
    "user",
    "domain",
    "group",
    "tag",
    "autogroup:member",
    "autogroup:tagged",
    "autogroup:admin",
    "autogroup:auditor",
  ],
  sshDst: ["user", "domain", "group", "tag", "autogroup:member", "autogroup:tagged", "autogroup:self"],
  tagOwner: ["user", "group", "tag", "autogroup:member", "autogroup:admin"],
  groupMember: ["user"],
  autoApprover: ["user", "group", "tag", "autogroup:member", "autogroup:tagged"],
  nodeAttr: [
    "any",
    "user",
    "group",
    "tag",
    "prefix",
    "autogroup:member",
    "autogroup:tagged",
    "autogroup:admin",
  ],
  testSrc: ["user", "tag", "prefix"],
  testDst: ["user", "tag", "prefix"],
};

const PLACE_HINT: Partial<Record<SelectorPlace, string>> = {
  via: "via lists the tags of the routers traffic must pass through",
  sshSrc: "ssh sources are identities: users, groups, tags and autogroups",
  sshDst: "ssh destinations are tags, users, groups, autogroup:self, autogroup:member or autogroup:tagged",
  groupMember: "groups contain users (name@domain); they cannot contain groups, tags or autogroups",
  testSrc: "test sources are a user, a tag, a host alias or one IP",
  testDst: "test destinations are a user, a tag, a host alias or one IP",
};

/**
 * Classify `text`. Host aliases win over addresses (a host may be named
 * like nothing else); a word with `@` is a user login; anything else that is
 * not a defined name is an error rather than a silent empty set.
 */
export function parseSelector(text: string, names: PolicyNames, place: SelectorPlace): Parsed<Selector> {
  const sel = classify(text, names);
  if (!sel.ok) return sel;
  const s = sel.value;
  const kind: Kind = s.kind === "autogroup" ? `autogroup:${s.name}` : s.kind;
  if (!ALLOWED[place].includes(kind)) {
    const what = s.kind === "prefix" ? (s.host ? "a host alias" : "an IP address or CIDR") : `"${text}"`;
    let msg = `${what} cannot be used here`;
    if (kind === "autogroup:self") msg = 'autogroup:self can only be used in "dst"';
    else if (kind === "autogroup:internet") msg = 'autogroup:internet can only be used in "dst"';
    else if (kind === "autogroup:nonroot") msg = 'autogroup:nonroot can only be used in ssh "users"';
    else if (kind === "autogroup:danger-all")
      msg =
        place === "dst"
          ? "cannot use autogroup:danger-all as a dst"
          : 'autogroup:danger-all can only be used in "src"';
    const hint = PLACE_HINT[place];
    return { ok: false, error: hint ? `${msg} (${hint})` : msg };
  }
  if ((place === "testSrc" || place === "testDst") && s.kind === "prefix" && !isSingle(s.prefix)) {
    return { ok: false, error: `"${text}" is a range; a test needs one address` };
  }
  return sel;
}

function classify(text: string, names: PolicyNames): Parsed<Selector> {
  if (text === "*") return { ok: true, value: { kind: "any", text } };
  if (text.startsWith("autogroup:")) {
    const name = text.slice("autogroup:".length);
    if ((AUTOGROUPS as readonly string[]).includes(name)) {
      return { ok: true, value: { kind: "autogroup", name: name as AutogroupName, text } };
    }
    return {
      ok: false,
      error: `unknown autogroup "${text}" (Trellis knows ${AUTOGROUPS.map((a) => `autogroup:${a}`).join(", ")})`,
    };
  }
  if (text.startsWith("group:")) {
    if (!names.groups.has(text)) return { ok: false, error: `group "${text}" is not defined in "groups"` };
    return { ok: true, value: { kind: "group", name: text, text } };
  }
  if (text.startsWith("tag:")) {
    if (!TAG_RE.test(text)) return { ok: false, error: `"${text}" is not a valid tag name` };
    if (!names.tags.has(text)) return { ok: false, error: `tag "${text}" is not defined in "tagOwners"` };
    return { ok: true, value: { kind: "tag", name: text, text } };
  }
  if (text.startsWith("user:")) {
    // Tailscale's wildcard over a login domain; the local part is "*" or nothing else.
    const m = /^user:\*@([^@\s*]+)$/.exec(text);
    if (m) return { ok: true, value: { kind: "domain", domain: m[1]!.toLowerCase(), text } };
    if (text.includes("*"))
      return { ok: false, error: `"${text}": a user wildcard is user:*@<domain>, with no partial wildcards` };
  }
  const host = names.hosts.get(text);
  if (host) return { ok: true, value: { kind: "prefix", prefix: host, host: text, text } };
  const prefix = parsePrefix(text);
  if (prefix) return { ok: true, value: { kind: "prefix", prefix, text } };
  if (text.includes("@")) {
    if (/\s/.test(text) || text.startsWith("@")) return { ok: false, error: `"${text}" is not a user login` };
    return { ok: true, value: { kind: "user", login: text.toLowerCase(), text } };
  }
  if (/^[0-9a-fA-F.:/]+$/.test(text))
    return { ok: false, error: `"${text}" is not a valid IP address or CIDR` };
  return {
    ok: false,
    error: `unknown name "${text}": not a host alias in "hosts", an IP or CIDR, a user (name@domain), group:, tag: or autogroup:`,
  };
}

/** Lowercased login forms a user is known by: email, name and `name@` (headscale's form for users without a domain). */
export function loginsOf(u: UserInfo): string[] {
  const name = u.name.toLowerCase();
  return [...new Set([u.email.toLowerCase(), name, `${name}@`])].filter((l) => l !== "");
}

/** The domain of a login email, lowercased ("" when it has none). */
export function domainOf(email: string): string {
  const at = email.lastIndexOf("@");
  return at < 0 ? "" : email.slice(at + 1).toLowerCase();
}

/** Whether a role counts for an autogroup. */
export function roleMatches(autogroup: AutogroupName, role: Role): boolean {
  return (autogroup === "admin" && role === "admin") || (autogroup === "auditor" && role === "auditor");
}

/**
 * Resolves selectors against one topology, caching by selector text. This is
 * the set-based resolution the compiler uses (evaluate.ts decides membership
 * independently, one node at a time, so the two can check each other).
 */
/**
 * What a Resolver looks up that depends on the topology alone, made once per
 * topology: a new policy over the same nodes (the common change) reuses it.
 */
interface TopologyIndex {
  usersByLogin: Map<string, UserInfo[]>;
  usersByDomain: Map<string, UserInfo[]>;
  nodesByUser: Map<number, NodeInfo[]>;
  nodesByTag: Map<string, NodeInfo[]>;
  /** Untagged nodes with an owner, for autogroup:member. */
  members: NodeInfo[];
  taggedNodes: NodeInfo[];
  /** Every node address, sorted, for finding the nodes inside a CIDR without a scan. */
  sortedAddrs: { v: 4 | 6; n: bigint; node: NodeInfo }[];
}

const topologyIndexes = new WeakMap<Topology, TopologyIndex>();

function topologyIndex(topology: Topology): TopologyIndex {
  let ix = topologyIndexes.get(topology);
  if (ix) return ix;
  ix = {
    usersByLogin: new Map(),
    usersByDomain: new Map(),
    nodesByUser: new Map(),
    nodesByTag: new Map(),
    members: [],
    taggedNodes: [],
    sortedAddrs: [],
  };
  for (const u of topology.users) {
    for (const login of loginsOf(u)) {
      const list = ix.usersByLogin.get(login) ?? [];
      list.push(u);
      ix.usersByLogin.set(login, list);
    }
    const domain = domainOf(u.email);
    if (domain !== "") ix.usersByDomain.set(domain, [...(ix.usersByDomain.get(domain) ?? []), u]);
  }
  for (const n of topology.nodes) {
    if (n.tagged) {
      ix.taggedNodes.push(n);
      for (const t of n.tags) {
        const list = ix.nodesByTag.get(t) ?? [];
        list.push(n);
        ix.nodesByTag.set(t, list);
      }
    } else if (n.user) {
      ix.members.push(n);
      const list = ix.nodesByUser.get(n.user.index) ?? [];
      list.push(n);
      ix.nodesByUser.set(n.user.index, list);
    }
  }
  ix.sortedAddrs = topology.nodes
    .flatMap((node) => node.addrs.map((a) => ({ v: a.v, n: a.n, node })))
    .sort((a, b) => (a.v !== b.v ? a.v - b.v : a.n < b.n ? -1 : a.n > b.n ? 1 : 0));
  topologyIndexes.set(topology, ix);
  return ix;
}

export class Resolver {
  private readonly usersByLogin: Map<string, UserInfo[]>;
  private readonly usersByDomain: Map<string, UserInfo[]>;
  private readonly nodesByUser: Map<number, NodeInfo[]>;
  private readonly nodesByTag: Map<string, NodeInfo[]>;
  private readonly cache = new Map<string, readonly NodeInfo[]>();
  private readonly members: NodeInfo[];
  private readonly taggedNodes: NodeInfo[];
  private readonly sortedAddrs: { v: 4 | 6; n: bigint; node: NodeInfo }[];

  constructor(
    readonly names: PolicyNames,
    readonly topology: Topology,
  ) {
    const ix = topologyIndex(topology);
    this.usersByLogin = ix.usersByLogin;
    this.usersByDomain = ix.usersByDomain;
    this.nodesByUser = ix.nodesByUser;
    this.nodesByTag = ix.nodesByTag;
    this.members = ix.members;
    this.taggedNodes = ix.taggedNodes;
    this.sortedAddrs = ix.sortedAddrs;
  }

  /** The untagged nodes owned by a user. */
  nodesOfUser(u: UserInfo): readonly NodeInfo[] {
    return this.nodesByUser.get(u.index) ?? [];
  }

  /** Users a login names (normally one). */
  usersOf(login: string): readonly UserInfo[] {
    return this.usersByLogin.get(login.toLowerCase()) ?? [];
  }

  /**
   * Nodes a selector stands for by identity, or by address for IPs and
   * CIDRs (nodes whose own address is inside). Sorted by name. `any`,
   * `autogroup:self` and `autogroup:internet` are not node sets and give [].
   */
  nodes(sel: Selector): readonly NodeInfo[] {
    const cached = this.cache.get(sel.text);
    if (cached) return cached;
    let out: NodeInfo[];
    switch (sel.kind) {
      case "any":
        out = [...this.topology.nodes];
        break;
      case "user":
        out = this.usersOf(sel.login).flatMap((u) => this.nodesOfUser(u));
        break;
      case "domain":
        out = (this.usersByDomain.get(sel.domain) ?? []).flatMap((u) => this.nodesOfUser(u));
        break;
      case "group": {
        const users = new Set((this.names.groups.get(sel.name) ?? []).flatMap((l) => this.usersOf(l)));
        // Members the identity provider puts in the group count as listed members.
        const idpName = sel.name.slice("group:".length);
        for (const u of this.topology.users) if (u.groups.includes(idpName)) users.add(u);
        out = [...users].flatMap((u) => this.nodesOfUser(u));
        break;
      }
      case "tag":
        out = [...(this.nodesByTag.get(sel.name) ?? [])];
        break;
      case "prefix":
        out = this.nodesInPrefix(sel.prefix);
        break;
      case "autogroup":
        switch (sel.name) {
          case "member":
            out = [...this.members];
            break;
          case "tagged":
            out = [...this.taggedNodes];
            break;
          case "admin":
          case "auditor":
            out = this.members.filter((n) => roleMatches(sel.name, n.user!.role));
            break;
          case "danger-all":
            out = [...this.topology.nodes];
            break;
          default:
            out = [];
        }
        break;
    }
    out = [...new Set(out)].sort((a, b) => a.index - b.index);
    this.cache.set(sel.text, out);
    return out;
  }

  private nodesInPrefix(p: Prefix): NodeInfo[] {
    const arr = this.sortedAddrs;
    // Binary search for the first address >= the prefix's base, then walk while inside.
    let lo = 0;
    let hi = arr.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const e = arr[mid]!;
      if (e.v < p.v || (e.v === p.v && e.n < p.base)) lo = mid + 1;
      else hi = mid;
    }
    const out: NodeInfo[] = [];
    for (let i = lo; i < arr.length; i++) {
      const e = arr[i]!;
      if (!prefixContains(p, e)) break;
      out.push(e.node);
    }
    return out;
  }

  /** The node that owns an address, if any. */
  nodeAt(addr: { v: 4 | 6; n: bigint }): NodeInfo | undefined {
    return this.topology.byAddr.get(addrKey(addr));
  }
}
