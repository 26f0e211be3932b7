// The tailnet a policy is applied to: users and nodes, in the TOPO.json form
// the CLI reads (the control server builds the same structure from its
// database). Parsed once into an index the compiler and evaluator share.
import { z } from "zod";
import { formatPath, PolicyError, type PolicyIssue } from "./errors";
import {
  EXIT_V4,
  EXIT_V6,
  formatAddr,
  parseAddr,
  parsePrefix,
  prefixCovers,
  type Addr,
  type Prefix,
} from "@trellis/proto/ip";

/** Roles of Trellis users (prisma `User.role`); `autogroup:admin` and `autogroup:auditor` follow them. */
export const ROLES = ["admin", "member", "auditor"] as const;
export type Role = (typeof ROLES)[number];

const UserSchema = z.strictObject({
  id: z.union([z.string(), z.number()]),
  name: z.string().min(1, "must not be empty"),
  email: z.string(),
  role: z.enum(ROLES).optional(),
  /** Groups from the identity provider (OIDC groups claim): member of "eng" ⇒ in group:eng. */
  groups: z.array(z.string()).optional(),
});

const NodeSchema = z.strictObject({
  hostname: z.string().optional(),
  tags: z.array(z.string()).optional(),
  ipv4: z.string().optional(),
  ipv6: z.string().optional(),
  user: z.string().nullable().optional(),
  // Other tools write a node without routes as null; it means none.
  routable_ips: z.array(z.string()).nullable().optional(),
  approved_routes: z.array(z.string()).nullable().optional(),
});

/**
 * Zod schema of TOPO.json: `{ users: [{id, name, email, role?}], nodes: {
 * "<name>": {hostname, tags, ipv4, ipv6, user, routable_ips, approved_routes} } }`.
 * `user` names a user by `name`; tagged nodes have none. `role` is a Trellis
 * addition (default "member").
 */
export const TopologySchema = z.strictObject({
  users: z.array(UserSchema).optional(),
  nodes: z.record(z.string().min(1), NodeSchema),
});

/** TOPO.json as written. */
export type TopologyInput = z.input<typeof TopologySchema>;

/** A user of the tailnet. */
export interface UserInfo {
  readonly index: number;
  readonly id: string;
  readonly name: string;
  readonly email: string;
  readonly role: Role;
  /** Identity-provider groups, without the "group:" prefix. */
  readonly groups: readonly string[];
}

/** A node with everything the policy engine asks of it, parsed once. */
export interface NodeInfo {
  readonly index: number;
  readonly name: string;
  readonly hostname: string;
  readonly tags: readonly string[];
  /** Tagged nodes have no user identity: their identity is their tags. */
  readonly tagged: boolean;
  /** The owning user; always undefined for tagged nodes. */
  readonly user?: UserInfo;
  /** The node's own addresses, IPv4 first. */
  readonly addrs: readonly Addr[];
  /** `addrs` as canonical text. */
  readonly ipStrs: readonly string[];
  /** Routes the node advertises (`routable_ips`), approved or not, exit routes included. */
  readonly advertised: readonly Prefix[];
  /** Subnet routes that are both advertised and approved; exit routes excluded. */
  readonly routes: readonly Prefix[];
  /** Whether the node is an approved exit node for IPv4 / IPv6 traffic. */
  readonly exit4: boolean;
  readonly exit6: boolean;
}

/** A parsed topology with lookups by name, address and user login. */
export interface Topology {
  readonly users: readonly UserInfo[];
  /** Nodes sorted by name, so every output built from them is in a stable order. */
  readonly nodes: readonly NodeInfo[];
  readonly byName: ReadonlyMap<string, NodeInfo>;
  /** Node by address key (see {@link addrKey}). */
  readonly byAddr: ReadonlyMap<string, NodeInfo>;
}

/** A map key for an address. */
export function addrKey(a: Addr): string {
  return `${a.v}:${a.n.toString(16)}`;
}

/**
 * Parsed node addresses by text, kept across calls: the control plane builds
 * the topology again after every change, from the same addresses, and
 * parsing (BigInt) and formatting them dominated rebuilds of large tailnets.
 * Entries are immutable; the cache is bounded and simply starts over when full.
 */
const ADDR_CACHE_MAX = 1 << 17;
const addrCache = new Map<string, { a: Addr; text: string; key: string } | null>();
function parseNodeAddr(text: string): { a: Addr; text: string; key: string } | null {
  let hit = addrCache.get(text);
  if (hit === undefined) {
    const a = parseAddr(text);
    hit = a ? { a, text: formatAddr(a), key: addrKey(a) } : null;
    if (addrCache.size >= ADDR_CACHE_MAX) addrCache.clear();
    addrCache.set(text, hit);
  }
  return hit;
}

/** An empty tailnet, for checking a policy on its own. */
export const EMPTY_TOPOLOGY: Topology = { users: [], nodes: [], byName: new Map(), byAddr: new Map() };

/**
 * Validate and index a topology. Every problem is reported at once:
 * unknown users, bad addresses and routes, addresses used twice, untagged
 * nodes without an owner.
 */
export function parseTopology(value: unknown, source?: string): Topology {
  const parsed = TopologySchema.safeParse(value);
  if (!parsed.success) {
    throw new PolicyError(
      "topology",
      parsed.error.issues.map((i) => ({
        path: formatPath(i.path),
        message:
          i.code === "unrecognized_keys"
            ? `unknown key(s) ${i.keys.map((k) => `"${k}"`).join(", ")}`
            : i.message,
      })),
      source,
    );
  }
  const issues: PolicyIssue[] = [];
  const users: UserInfo[] = [];
  const userByName = new Map<string, UserInfo>();
  (parsed.data.users ?? []).forEach((u, index) => {
    const info: UserInfo = {
      index,
      id: String(u.id),
      name: u.name,
      email: u.email,
      role: u.role ?? "member",
      groups: u.groups ?? [],
    };
    if (userByName.has(u.name))
      issues.push({ path: `users[${index}].name`, message: `user "${u.name}" is listed twice` });
    userByName.set(u.name, info);
    users.push(info);
  });

  const names = Object.keys(parsed.data.nodes).sort();
  const nodes: NodeInfo[] = [];
  const byName = new Map<string, NodeInfo>();
  const byAddr = new Map<string, NodeInfo>();
  for (const name of names) {
    const n = parsed.data.nodes[name]!;
    const at = (key: string) => formatPath(["nodes", name, key]);
    const tags = [...new Set(n.tags ?? [])].sort();
    for (const t of tags) {
      if (!/^tag:[A-Za-z][A-Za-z0-9-]*$/.test(t))
        issues.push({ path: at("tags"), message: `"${t}" is not a tag` });
    }
    const tagged = tags.length > 0;
    let user: UserInfo | undefined;
    if (!tagged) {
      if (n.user === undefined || n.user === null) {
        issues.push({ path: at("user"), message: "an untagged node must belong to a user" });
      } else {
        user = userByName.get(n.user);
        if (!user) issues.push({ path: at("user"), message: `unknown user "${n.user}"` });
      }
    }
    const addrs: Addr[] = [];
    const ipStrs: string[] = [];
    const keys: string[] = [];
    for (const [key, family] of [
      ["ipv4", 4],
      ["ipv6", 6],
    ] as const) {
      const text = n[key];
      if (text === undefined) continue;
      const parsed = parseNodeAddr(text);
      if (!parsed || parsed.a.v !== family) {
        issues.push({ path: at(key), message: `"${text}" is not an IPv${family} address` });
        continue;
      }
      const other = byAddr.get(parsed.key);
      if (other)
        issues.push({ path: at(key), message: `${text} is already the address of node "${other.name}"` });
      addrs.push(parsed.a);
      ipStrs.push(parsed.text);
      keys.push(parsed.key);
    }
    if (addrs.length === 0)
      issues.push({ path: at("ipv4"), message: "a node needs an ipv4 or ipv6 address" });

    const parseRoutes = (key: "routable_ips" | "approved_routes") =>
      (n[key] ?? []).flatMap((r, i) => {
        const p = parsePrefix(r);
        if (!p) {
          issues.push({ path: formatPath(["nodes", name, key, i]), message: `"${r}" is not a CIDR prefix` });
          return [];
        }
        return [p];
      });
    const advertised = parseRoutes("routable_ips");
    const approved = parseRoutes("approved_routes");
    // A route is in effect only when the node advertises it and an admin (or
    // autoApprovers) approved it; either one alone does nothing.
    const active = approved.filter((p) =>
      advertised.some((a) => a.v === p.v && a.bits === p.bits && a.base === p.base),
    );
    const isExit = (p: Prefix, e: Prefix) => p.bits === 0 && prefixCovers(e, p);
    const info: NodeInfo = {
      index: nodes.length,
      name,
      hostname: n.hostname ?? name,
      tags,
      tagged,
      user,
      addrs,
      ipStrs,
      advertised,
      routes: active.filter((p) => p.bits !== 0),
      exit4: active.some((p) => isExit(p, EXIT_V4)),
      exit6: active.some((p) => isExit(p, EXIT_V6)),
    };
    for (const k of keys) byAddr.set(k, info);
    nodes.push(info);
    byName.set(name, info);
  }
  if (issues.length > 0) throw new PolicyError("topology", issues, source);
  return { users, nodes, byName, byAddr };
}
