// Wire types of the admin HTTP API (the console and API tokens use the same
// endpoints). Request
// bodies are strict: unknown fields are refused, so a typo is an error rather
// than a silently ignored setting. Response schemas are plain objects: a
// client parses what it reads and drops fields it does not know, so the server
// may add a field without breaking an older console.
import { z } from "zod";
import { ApiError } from "../errors";
import { parseAddr } from "../ip";
import { CidrText, RelayMap } from "../node/control";
import { TagText } from "./keys";

/** The body of a 204 response: there is none. */
export const NoContent = z.undefined();
export type NoContent = z.infer<typeof NoContent>;

// --- Identity and permissions -------------------------------------------------

/** admin: everything; member: their own machines and the Connect page; auditor: read everything. */
export const Role = z.enum(["admin", "member", "auditor"]);
export type Role = z.infer<typeof Role>;

/** What an API token may do. A token never exceeds its user's role. */
export const Scope = z.enum([
  "machines:read",
  "machines:write",
  "users:read",
  "users:write",
  "keys:read",
  "keys:write",
  "policy:read",
  "policy:write",
  "dns:read",
  "dns:write",
  "settings:read",
  "settings:write",
  "logs:read",
]);
export type Scope = z.infer<typeof Scope>;

/** Cursor pagination shared by every list endpoint (`?cursor=…&limit=…`). */
export const PageQuery = z.object({
  cursor: z.string().max(200).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});
export type PageQuery = z.infer<typeof PageQuery>;

/** One page of a list endpoint whose items `item` describes. */
export function Page<Item extends z.ZodType>(item: Item) {
  return z.object({
    items: z.array(item),
    /** Pass as `cursor` for the next page; null on the last page. */
    nextCursor: z.string().nullable(),
    /** Number of items matching the filter, over all pages. */
    total: z.number().int().min(0),
  });
}
export type Page<T> = { items: T[]; nextCursor: string | null; total: number };

// --- Machines -----------------------------------------------------------------

export const DnsLabelText = z
  .string()
  .min(1)
  .max(63)
  .regex(
    /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/,
    "must be lowercase letters, digits and inner hyphens (a DNS label)",
  );

export const MachineQuery = PageQuery.extend({
  /** Substring of name, hostname, address, owner email or tag. */
  q: z.string().max(200).optional(),
  status: z.enum(["online", "offline", "pending", "expired"]).optional(),
  userId: z.string().max(64).optional(),
  tag: TagText.optional(),
});
export type MachineQuery = z.infer<typeof MachineQuery>;

export const MachineInfo = z.object({
  id: z.string(),
  name: z.string(),
  /** Fully qualified MagicDNS name, without the trailing dot. */
  dnsName: z.string(),
  hostname: z.string(),
  os: z.string(),
  nodeKey: z.string(),
  ipv4: z.string().nullable(),
  ipv6: z.string().nullable(),
  user: z.object({ id: z.string(), email: z.string(), name: z.string() }).nullable(),
  tags: z.array(z.string()),
  online: z.boolean(),
  lastSeen: z.string().nullable(),
  /** ISO time the key expires; null when expiry is disabled. */
  keyExpiry: z.string().nullable(),
  expired: z.boolean(),
  ephemeral: z.boolean(),
  /** False while awaiting admin approval. */
  authorized: z.boolean(),
  advertisedRoutes: z.array(z.string()),
  approvedRoutes: z.array(z.string()),
  /** Advertises 0.0.0.0/0 and ::/0. */
  exitNodeAdvertised: z.boolean(),
  exitNodeApproved: z.boolean(),
  endpoints: z.array(z.string()),
  homeRegion: z.number().int().nullable(),
  createdAt: z.string(),
  /** A plain WireGuard peer: the gateway it goes through (id null when that gateway was removed). Absent: a Trellis node. */
  wireguard: z.object({ gatewayId: z.string().nullable() }).optional(),
});
export type MachineInfo = z.infer<typeof MachineInfo>;

export const UpdateMachineRequest = z.strictObject({
  name: DnsLabelText.optional(),
  /** Replaces the machine's tags; each must be owned by the caller per tagOwners (admins may set any defined tag). */
  tags: z.array(TagText).max(32).optional(),
  /** True: the key never expires. False: it expires the tailnet's default period from now. */
  keyExpiryDisabled: z.boolean().optional(),
});
export type UpdateMachineRequest = z.infer<typeof UpdateMachineRequest>;

export const SetRoutesRequest = z.strictObject({
  /** The complete set of approved routes (replaces the current one). */
  routes: z.array(CidrText).max(256),
});
export type SetRoutesRequest = z.infer<typeof SetRoutesRequest>;

// --- Users and invitations ----------------------------------------------------------

export const UserQuery = PageQuery.extend({
  q: z.string().max(200).optional(),
  role: Role.optional(),
});
export type UserQuery = z.infer<typeof UserQuery>;

export const UserInfo = z.object({
  id: z.string(),
  email: z.string(),
  name: z.string(),
  role: Role,
  groups: z.array(z.string()),
  /** "local" (password) or "oidc". */
  login: z.enum(["local", "oidc"]),
  machines: z.number().int().min(0),
  createdAt: z.string(),
  lastLoginAt: z.string().nullable(),
  /**
   * Failed password sign-ins holding this account back now; null when none
   * do. `DELETE /api/v1/users/:id/login-throttle` clears it.
   */
  loginThrottle: z
    .object({
      /** Until when the longest hold lasts. */
      until: z.string(),
      /** Client addresses (an IPv6 client's /64) whose attempts on this account must wait. */
      addresses: z.array(z.string()),
      /** Failures from every address passed the account-wide mark: each address is slowed. */
      accountWide: z.boolean(),
    })
    .nullable(),
});
export type UserInfo = z.infer<typeof UserInfo>;

/** `GET /api/v1/me`: who the caller is and what they may do. */
export const Me = z.object({
  id: z.string(),
  email: z.string(),
  name: z.string(),
  role: Role,
  /** A console session or an API token. */
  via: z.enum(["session", "token"]),
  scopes: z.array(Scope),
});
export type Me = z.infer<typeof Me>;

export const UpdateUserRequest = z.strictObject({ role: Role });
export type UpdateUserRequest = z.infer<typeof UpdateUserRequest>;

export const CreateInvitationRequest = z.strictObject({
  email: z.email().max(254),
  role: Role.default("member"),
  expiresInHours: z
    .number()
    .int()
    .min(1)
    .max(30 * 24)
    .default(72),
});
export type CreateInvitationRequest = z.input<typeof CreateInvitationRequest>;

export const InvitationInfo = z.object({
  id: z.string(),
  email: z.string(),
  role: Role,
  createdBy: z.string(),
  createdAt: z.string(),
  expiresAt: z.string(),
  acceptedAt: z.string().nullable(),
});
export type InvitationInfo = z.infer<typeof InvitationInfo>;

export const InvitationList = z.object({ items: z.array(InvitationInfo) });
export type InvitationList = z.infer<typeof InvitationList>;

/** An invitation just made: the link (with its one-time token) is in this response only. */
export const CreatedInvitation = z.object({ invitation: InvitationInfo, url: z.string() });
export type CreatedInvitation = z.infer<typeof CreatedInvitation>;

/** Who an invitation link is for, shown before the account is made (`POST /api/invitations/peek`). */
export const InvitationPreview = z.object({ email: z.string(), role: Role });
export type InvitationPreview = z.infer<typeof InvitationPreview>;

/** An account just made by first-run setup or by accepting an invitation. */
export const NewAccount = z.object({
  user: z.object({ id: z.string(), email: z.string(), name: z.string(), role: Role }),
});
export type NewAccount = z.infer<typeof NewAccount>;

export const AcceptInvitationRequest = z.strictObject({
  token: z.string().min(16).max(128),
  name: z.string().trim().min(1).max(100),
  password: z
    .string()
    .min(12, "password must be at least 12 characters")
    .max(256, "password must be at most 256 characters"),
});
export type AcceptInvitationRequest = z.infer<typeof AcceptInvitationRequest>;

// --- API tokens --------------------------------------------------------------

export const CreateApiTokenRequest = z.strictObject({
  description: z.string().trim().max(200).default(""),
  scopes: z.array(Scope).min(1).max(Scope.options.length),
  expiresInDays: z.number().int().min(1).max(365).default(90),
});
export type CreateApiTokenRequest = z.input<typeof CreateApiTokenRequest>;

export const ApiTokenInfo = z.object({
  id: z.string(),
  prefix: z.string(),
  description: z.string(),
  scopes: z.array(Scope),
  createdAt: z.string(),
  expiresAt: z.string(),
  lastUsedAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
});
export type ApiTokenInfo = z.infer<typeof ApiTokenInfo>;

export const ApiTokenList = z.object({ items: z.array(ApiTokenInfo) });
export type ApiTokenList = z.infer<typeof ApiTokenList>;

/** A token just made: the token itself is in this response only. */
export const CreatedApiToken = z.object({ token: z.string(), info: ApiTokenInfo });
export type CreatedApiToken = z.infer<typeof CreatedApiToken>;

// --- Policy ------------------------------------------------------------------------

export const SetPolicyRequest = z.strictObject({
  text: z.string().max(1024 * 1024),
  /** The version the edit started from; a newer saved version makes the save fail with 409. */
  baseVersion: z.number().int().min(0).optional(),
});
export type SetPolicyRequest = z.infer<typeof SetPolicyRequest>;

/** `GET /api/v1/policy`: the policy in force. */
export const CurrentPolicy = z.object({ version: z.number().int().min(0), text: z.string() });
export type CurrentPolicy = z.infer<typeof CurrentPolicy>;

/** The version a save or a restore created. */
export const SavedPolicy = z.object({ version: z.number().int().min(0) });
export type SavedPolicy = z.infer<typeof SavedPolicy>;

const PolicyIssue = ApiError.shape.issues.unwrap().element;

/** A dry run (`POST /api/v1/policy/validate`): every problem, with its line and column where known. */
export const PolicyValidation = z.discriminatedUnion("ok", [
  z.object({ ok: z.literal(true) }),
  z.object({ ok: z.literal(false), message: z.string(), issues: z.array(PolicyIssue) }),
]);
export type PolicyValidation = z.infer<typeof PolicyValidation>;

export const PolicyVersionInfo = z.object({
  id: z.number().int(),
  createdAt: z.string(),
  createdBy: z.string(),
  /** Display name of the author (email), or "system". */
  createdByName: z.string(),
  bytes: z.number().int().min(0),
  current: z.boolean(),
});
export type PolicyVersionInfo = z.infer<typeof PolicyVersionInfo>;

/** One saved version with its text (`GET /api/v1/policy/versions/:id`). */
export const PolicyVersionDetail = PolicyVersionInfo.extend({ text: z.string() });
export type PolicyVersionDetail = z.infer<typeof PolicyVersionDetail>;

export const ReachabilityRequest = z.strictObject({
  /** Node name, tailnet address, or user email (any of their machines). */
  src: z.string().min(1).max(254),
  /** Node name or tailnet address, or an IP inside an approved subnet route. */
  dst: z.string().min(1).max(254),
  port: z.number().int().min(0).max(65535),
  proto: z.enum(["tcp", "udp", "icmp"]).default("tcp"),
});
export type ReachabilityRequest = z.input<typeof ReachabilityRequest>;

const NodeRef = z.object({ id: z.string(), name: z.string() });

export const ReachabilityResult = z.object({
  allowed: z.boolean(),
  /** The policy entry that allows it (`acls[2]`, `grants[0]`), with its text; null when denied. */
  rule: z
    .object({
      kind: z.enum(["acls", "grants", "ssh"]),
      index: z.number().int().min(0),
      text: z.string().optional(),
    })
    .nullable(),
  src: z.object({
    input: z.string(),
    /** Address the check used. */
    ip: z.string().nullable(),
    node: NodeRef.nullable(),
    /** Owner's email for an untagged machine. */
    user: z.string().nullable(),
  }),
  dst: z.object({
    input: z.string(),
    ip: z.string().nullable(),
    node: NodeRef.nullable(),
    /** The machine whose filter decides, when it is not `node` (a subnet router or exit node). */
    via: NodeRef.nullable(),
  }),
  /** One sentence for people. */
  explanation: z.string(),
});
export type ReachabilityResult = z.infer<typeof ReachabilityResult>;

/**
 * What the caller's own machine may open on another (`POST /api/v1/me/access`):
 * the browser apps offer SSH, web and VNC from it, and explain a refusal.
 */
export const AccessRequest = z.strictObject({
  /** The caller's own machine (the browser's node) the connection would come from. */
  from: z.string().min(1).max(254),
  /** The machine to reach: name, MagicDNS name or tailnet address. */
  machine: z.string().min(1).max(254),
  /** A port to explain (allowed or not, and by which rule). */
  port: z.number().int().min(1).max(65535).optional(),
});
export type AccessRequest = z.input<typeof AccessRequest>;

const AccessPorts = z.object({ first: z.number().int(), last: z.number().int() });

export const AccessResult = z.object({
  machine: z.object({ id: z.string(), name: z.string() }),
  /** TCP ports the machine's packet filter accepts from `from`, merged and sorted. */
  tcp: z.array(AccessPorts),
  /** The answer for `port`, when asked. */
  port: ReachabilityResult.optional(),
});
export type AccessResult = z.infer<typeof AccessResult>;

// --- DNS and settings ----------------------------------------------------------

const IpText = z
  .string()
  .max(64)
  .refine((s) => parseAddr(s) !== null, "must be an IPv4 or IPv6 address");

export const DnsSettings = z.strictObject({
  magicDns: z.boolean(),
  /** Suffix of MagicDNS names, e.g. "trellis.internal". */
  domain: z
    .string()
    .max(200)
    .regex(
      /^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]*[a-z0-9])?$/,
      "must be a lowercase DNS name",
    ),
  nameservers: z.array(IpText).max(8),
  searchDomains: z.array(z.string().max(200)).max(8).default([]),
});
export type DnsSettings = z.infer<typeof DnsSettings>;

export const TailnetSettings = z.strictObject({
  name: z.string().trim().min(1).max(100),
  /** New machines wait for an admin before they can talk to anyone. */
  nodeApproval: z.boolean(),
  /** Lifetime of new untagged node keys. */
  keyExpiryDays: z.number().int().min(1).max(365),
  /**
   * Browser machines (a console session registering its tab's key) stay when
   * their browser goes away; otherwise they are ephemeral: removed once
   * offline for the grace period, as Tailscale removes ephemeral nodes.
   */
  persistentBrowserNodes: z.boolean(),
  /** Relay map published to nodes; null: the built-in one (or TRELLIS_RELAY_MAP). */
  relayMap: RelayMap.nullable(),
});
export type TailnetSettings = z.infer<typeof TailnetSettings>;

// --- Logs ------------------------------------------------------------------------------

export const AuditQuery = PageQuery.extend({
  actor: z.string().max(100).optional(),
  action: z.string().max(100).optional(),
  target: z.string().max(200).optional(),
  since: z.iso.datetime().optional(),
  until: z.iso.datetime().optional(),
});
export type AuditQuery = z.infer<typeof AuditQuery>;

export const AuditEventInfo = z.object({
  id: z.string(),
  at: z.string(),
  actor: z.string(),
  /** Email of the acting user, the node's name, or "system". */
  actorName: z.string(),
  action: z.string(),
  target: z.string(),
  /** The user's email or machine's name (as recorded, once removed); else the target as stored. */
  targetName: z.string(),
  detail: z.record(z.string(), z.unknown()),
});
export type AuditEventInfo = z.infer<typeof AuditEventInfo>;

export const ConnectionQuery = PageQuery.extend({
  nodeId: z.string().max(64).optional(),
  userId: z.string().max(64).optional(),
  since: z.iso.datetime().optional(),
  until: z.iso.datetime().optional(),
});
export type ConnectionQuery = z.infer<typeof ConnectionQuery>;

const ConnectionEnd = z.object({ id: z.string(), name: z.string(), user: z.string().nullable() }).nullable();

export const ConnectionInfo = z.object({
  id: z.string(),
  reporter: NodeRef,
  direction: z.enum(["in", "out"]),
  proto: z.number().int(),
  src: z.string(),
  dst: z.string(),
  srcNode: ConnectionEnd,
  dstNode: ConnectionEnd,
  startedAt: z.string(),
  endedAt: z.string().nullable(),
  txBytes: z.number().int().min(0),
  rxBytes: z.number().int().min(0),
  txPackets: z.number().int().min(0),
  rxPackets: z.number().int().min(0),
});
export type ConnectionInfo = z.infer<typeof ConnectionInfo>;
