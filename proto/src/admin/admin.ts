// Wire types of the admin HTTP API (the console and API tokens use the same
// endpoints). Request
// bodies are strict: unknown fields are refused, so a typo is an error rather
// than a silently ignored setting.
import { z } from "zod";
import { CidrText, RelayMap } from "../node/control";
import { TagText } from "./keys";

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

export interface Page<T> {
  items: T[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
  /** Number of items matching the filter, over all pages. */
  total: number;
}

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

export interface MachineInfo {
  id: string;
  name: string;
  /** Fully qualified MagicDNS name, without the trailing dot. */
  dnsName: string;
  hostname: string;
  os: string;
  nodeKey: string;
  ipv4: string | null;
  ipv6: string | null;
  user: { id: string; email: string; name: string } | null;
  tags: string[];
  online: boolean;
  lastSeen: string | null;
  /** ISO time the key expires; null when expiry is disabled. */
  keyExpiry: string | null;
  expired: boolean;
  ephemeral: boolean;
  /** False while awaiting admin approval. */
  authorized: boolean;
  advertisedRoutes: string[];
  approvedRoutes: string[];
  /** Advertises 0.0.0.0/0 and ::/0. */
  exitNodeAdvertised: boolean;
  exitNodeApproved: boolean;
  endpoints: string[];
  homeRegion: number | null;
  createdAt: string;
}

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

export interface UserInfo {
  id: string;
  email: string;
  name: string;
  role: Role;
  groups: string[];
  /** "local" (password) or "oidc". */
  login: "local" | "oidc";
  machines: number;
  createdAt: string;
  lastLoginAt: string | null;
}

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

export interface InvitationInfo {
  id: string;
  email: string;
  role: Role;
  createdBy: string;
  createdAt: string;
  expiresAt: string;
  acceptedAt: string | null;
}

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

export interface ApiTokenInfo {
  id: string;
  prefix: string;
  description: string;
  scopes: Scope[];
  createdAt: string;
  expiresAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

// --- Policy ------------------------------------------------------------------------

export const SetPolicyRequest = z.strictObject({
  text: z.string().max(1024 * 1024),
  /** The version the edit started from; a newer saved version makes the save fail with 409. */
  baseVersion: z.number().int().min(0).optional(),
});
export type SetPolicyRequest = z.infer<typeof SetPolicyRequest>;

export interface PolicyVersionInfo {
  id: number;
  createdAt: string;
  createdBy: string;
  /** Display name of the author (email), or "system". */
  createdByName: string;
  bytes: number;
  current: boolean;
}

export const ReachabilityRequest = z.strictObject({
  /** Node name, tailnet address, or user email (any of their machines). */
  src: z.string().min(1).max(254),
  /** Node name or tailnet address, or an IP inside an approved subnet route. */
  dst: z.string().min(1).max(254),
  port: z.number().int().min(0).max(65535),
  proto: z.enum(["tcp", "udp", "icmp"]).default("tcp"),
});
export type ReachabilityRequest = z.input<typeof ReachabilityRequest>;

// --- DNS and settings ----------------------------------------------------------

const IpText = z
  .string()
  .max(64)
  .regex(/^[0-9a-fA-F:.]+$/, "must be an IP address");

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

export interface AuditEventInfo {
  id: string;
  at: string;
  actor: string;
  /** Email of the acting user, the node's name, or "system". */
  actorName: string;
  action: string;
  target: string;
  detail: Record<string, unknown>;
}

export const ConnectionQuery = PageQuery.extend({
  nodeId: z.string().max(64).optional(),
  userId: z.string().max(64).optional(),
  since: z.iso.datetime().optional(),
  until: z.iso.datetime().optional(),
});
export type ConnectionQuery = z.infer<typeof ConnectionQuery>;

export interface ConnectionInfo {
  id: string;
  reporter: { id: string; name: string };
  direction: "in" | "out";
  proto: number;
  src: string;
  dst: string;
  srcNode: { id: string; name: string; user: string | null } | null;
  dstNode: { id: string; name: string; user: string | null } | null;
  startedAt: string;
  endedAt: string | null;
  txBytes: number;
  rxBytes: number;
  txPackets: number;
  rxPackets: number;
}
