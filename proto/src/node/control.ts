// Wire types of the control API between nodes and the control server
// (Trellis's tailcfg): registration, the netmap and its deltas, endpoint
// updates, the relay map. Bundle-safe: gateways and browsers import these.
//
// Packet filters and SSH rules keep Tailscale's field names (`SrcIPs`,
// `DstPorts`, `principals`, …) because that is the shape the policy engine
// compiles to; Trellis's own fields are camelCase.
import { z } from "zod";

/** `nodekey:` followed by 64 lowercase hex digits: a node's WireGuard public key. */
export const NodeKeyText = z
  .string()
  .regex(/^nodekey:[0-9a-f]{64}$/, 'must be "nodekey:" followed by 64 lowercase hex digits');

/** A CIDR prefix as text (syntax only; the control server checks the meaning). */
export const CidrText = z
  .string()
  .max(64)
  .regex(/^[0-9a-fA-F:.]+\/\d{1,3}$/, "must be a CIDR prefix such as 10.0.0.0/24");

/** `ip:port` or `[ipv6]:port` of a UDP endpoint a peer may be reached on. */
export const EndpointText = z
  .string()
  .max(64)
  .regex(/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d{1,5}$/, "must be ip:port or [ipv6]:port");

/** Limits on what a node may send; bounded so one node cannot bloat every peer's map. */
export const LIMITS = {
  hostname: 63,
  os: 32,
  routes: 64,
  endpoints: 16,
  preAuthKey: 128,
} as const;

// --- Registration -----------------------------------------------------------

/**
 * Body of `POST /api/v1/register`. The node key is not in the body: it is the
 * one the request is signed with (see the `Authorization: Trellis-Node`
 * scheme), so a node can only register its own key.
 */
export const RegisterRequest = z.strictObject({
  /**
   * Needed to register a new node key or renew an expired one; a known,
   * unexpired key (restart) and a key rotation (`rotateFrom`) need none.
   */
  preAuthKey: z.string().min(16).max(LIMITS.preAuthKey).optional(),
  hostname: z
    .string()
    .trim()
    .min(1, "hostname must not be empty")
    .max(LIMITS.hostname, `hostname must be at most ${LIMITS.hostname} characters`),
  os: z.string().max(LIMITS.os).default(""),
  /** Subnet routes (and 0.0.0.0/0, ::/0 for an exit node) the node offers. */
  routableIPs: z.array(CidrText).max(LIMITS.routes).default([]),
  /**
   * Key rotation: the request is signed with the new node key and this proves
   * possession of the old one, whose node (id, name, addresses, owner, tags)
   * then continues under the new key. See {@link ROTATION_PROOF}.
   */
  rotateFrom: z
    .strictObject({
      nodeKey: NodeKeyText,
      /**
       * An `Authorization: Trellis-Node …` value made with the OLD key over
       * method `ROTATE`, path `/api/v1/register` and, as body, the new node
       * key's text (`nodekey:<hex>`): the same MAC key derivation and ±60 s
       * window as every signed request, so a signer needs no new code.
       */
      signature: z.string().max(256),
    })
    .optional(),
});
export type RegisterRequest = z.input<typeof RegisterRequest>;

/**
 * What the old key signs to hand its node over to a new key: method
 * `ROTATE` (no HTTP request uses it, so the proof cannot be replayed as one),
 * path `/api/v1/register` and body = the new key. With a request signer:
 * `oldSigner.sign(ROTATION_PROOF.method, ROTATION_PROOF.path, newNodeKey)`.
 */
export const ROTATION_PROOF = { method: "ROTATE", path: "/api/v1/register" } as const;

/** The previous node keys a node's row remembers (they never authenticate again). */
export const MAX_PREVIOUS_KEYS = 16;

/** Identity the control server gave a node. */
export const NodeIdentityInfo = z.object({
  id: z.string(),
  key: NodeKeyText,
  /** DNS label, unique in the tailnet. */
  name: z.string(),
  /** Fully qualified MagicDNS name, ending in a dot. */
  dnsName: z.string(),
  /** The node's own addresses as /32 and /128 prefixes, IPv4 first. */
  addresses: z.array(z.string()),
  tags: z.array(z.string()),
  /** Owning user's id; null for tagged nodes. */
  user: z.string().nullable(),
  ephemeral: z.boolean(),
  /** ISO time the node key stops authenticating; null: never. */
  keyExpiry: z.string().nullable(),
  authorized: z.boolean(),
});
export type NodeIdentityInfo = z.infer<typeof NodeIdentityInfo>;

export const RegisterResponse = z.object({
  node: NodeIdentityInfo,
  /** True when this call created the node, false when it re-registered an existing one. */
  created: z.boolean(),
});
export type RegisterResponse = z.infer<typeof RegisterResponse>;

/** Body of `GET /api/v1/key`: the control server's X25519 public key. */
export const ControlKeyResponse = z.object({
  publicKey: z.string().regex(/^controlkey:[0-9a-f]{64}$/),
});
export type ControlKeyResponse = z.infer<typeof ControlKeyResponse>;

// --- Endpoints ----------------------------------------------------------------

/** Body of `POST /api/v1/endpoints`: where the node can be reached and its home relay. */
export const EndpointsRequest = z.strictObject({
  endpoints: z.array(EndpointText).max(LIMITS.endpoints),
  /** Region id of the relay the node is connected to; null for none. */
  homeRegion: z.number().int().min(1).max(65535).nullable().optional(),
});
export type EndpointsRequest = z.input<typeof EndpointsRequest>;

/** Answer to `POST /api/v1/endpoints`: whether anything changed (peers are told only then). */
export const EndpointsResponse = z.object({ changed: z.boolean() });
export type EndpointsResponse = z.infer<typeof EndpointsResponse>;

/** Most plain WireGuard peers one `POST /api/v1/wireguard-peers/seen` names. */
export const PLAIN_PEERS_SEEN_MAX = 512;

/**
 * Body of `POST /api/v1/wireguard-peers/seen`, from a gateway: when each of
 * its plain WireGuard peers last completed a handshake with it (their
 * presence: they stream no map). The server believes only the gateway a
 * peer goes through, and never moves a time back.
 */
export const PlainPeersSeenRequest = z.strictObject({
  peers: z
    .array(z.strictObject({ key: NodeKeyText, lastHandshake: z.iso.datetime() }))
    .min(1)
    .max(PLAIN_PEERS_SEEN_MAX),
});
export type PlainPeersSeenRequest = z.infer<typeof PlainPeersSeenRequest>;

/** Answer to `POST /api/v1/wireguard-peers/seen`: how many machines' last-seen time moved. */
export const PlainPeersSeenResponse = z.object({ updated: z.number().int().nonnegative() });
export type PlainPeersSeenResponse = z.infer<typeof PlainPeersSeenResponse>;

/**
 * How long a plain WireGuard peer counts as online after a handshake:
 * WireGuard starts a new one every 2 minutes while traffic flows, and
 * `PersistentKeepalive` keeps traffic flowing.
 */
export const PLAIN_PEER_ONLINE_MS = 3 * 60_000;

/** Whether a plain WireGuard peer last seen at `lastSeen` is online at `now`. */
export function plainPeerOnline(lastSeen: Date | string | null, now: number = Date.now()): boolean {
  if (lastSeen === null) return false;
  const t = typeof lastSeen === "string" ? Date.parse(lastSeen) : lastSeen.getTime();
  return Number.isFinite(t) && now - t <= PLAIN_PEER_ONLINE_MS;
}

/**
 * `POST /api/v1/logout` (an empty body is `{}`): `remove` asks for the machine
 * to be deleted rather than its key expired — a browser leaving the tailnet.
 */
export const LogoutRequest = z.strictObject({ remove: z.boolean().optional() });
export type LogoutRequest = z.infer<typeof LogoutRequest>;

/** Answer to `POST /api/v1/logout`: the key stopped working; an ephemeral (or `remove`d) node was deleted. */
export const LogoutResponse = z.object({ loggedOut: z.literal(true), deleted: z.boolean() });
export type LogoutResponse = z.infer<typeof LogoutResponse>;

// --- Relay map ------------------------------------------------------------------

export const RelayNode = z.strictObject({
  /** Unique among the relays of the map, e.g. "1a". */
  name: z.string().min(1).max(64),
  regionId: z.number().int().min(1).max(65535),
  hostName: z.string().min(1).max(253),
  /** ws:// or wss:// URL of the relay's DERP endpoint. */
  url: z.string().regex(/^wss?:\/\/[^/\s]+\/\S*$/, "must be a ws:// or wss:// URL"),
  /** UDP port of its STUN server; -1 for none (as Tailscale). */
  stunPort: z.number().int().min(-1).max(65535),
});
export type RelayNode = z.infer<typeof RelayNode>;

export const RelayRegion = z.strictObject({
  regionId: z.number().int().min(1).max(65535),
  regionCode: z.string().min(1).max(32),
  regionName: z.string().min(1).max(128),
  nodes: z.array(RelayNode).min(1).max(64),
});
export type RelayRegion = z.infer<typeof RelayRegion>;

/** The relays nodes may use, by region id (as Tailscale's DERPMap). */
export const RelayMap = z
  .strictObject({
    regions: z.record(z.string().regex(/^\d+$/), RelayRegion),
  })
  .refine((m) => Object.entries(m.regions).every(([id, r]) => String(r.regionId) === id), {
    message: "each region must be listed under its own regionId",
  });
export type RelayMap = z.infer<typeof RelayMap>;

// --- Relay admission ---------------------------------------------------------

/** Most keys a relay asks about at once. */
export const RELAY_VERIFY_MAX_KEYS = 1000;

/**
 * Body of `POST /api/v1/relay/verify`: a relay asks which of these node keys
 * may use it (verify-clients), when they log in and again now and then to
 * drop nodes deleted or expired since.
 */
export const RelayVerifyRequest = z.strictObject({
  nodeKeys: z.array(NodeKeyText).min(1).max(RELAY_VERIFY_MAX_KEYS),
});
export type RelayVerifyRequest = z.infer<typeof RelayVerifyRequest>;

/** One answer per key asked, in order: true for a node that is approved and whose key is valid. */
export const RelayVerifyResponse = z.object({ allowed: z.array(z.boolean()) });
export type RelayVerifyResponse = z.infer<typeof RelayVerifyResponse>;

// --- Netmap -----------------------------------------------------------------------

export const PortRange = z.object({ First: z.number().int(), Last: z.number().int() });

/** Tailscale's `tailcfg.FilterRule` (see policy/src/compile.ts). */
export const FilterRule = z.object({
  SrcIPs: z.array(z.string()),
  DstPorts: z.array(z.object({ IP: z.string(), Ports: PortRange })).optional(),
  IPProto: z.array(z.number().int()).optional(),
  CapGrant: z
    .array(
      z.object({
        Dsts: z.array(z.string()),
        // A capability granted without values (Tailscale's companion capabilities) is null.
        CapMap: z.record(z.string(), z.array(z.unknown()).nullable()),
      }),
    )
    .optional(),
});
export type FilterRule = z.infer<typeof FilterRule>;

/** Tailscale's `tailcfg.SSHRule` (see policy/src/ssh.ts). */
export const SSHRule = z.object({
  principals: z.array(z.object({ nodeIP: z.string().optional(), any: z.boolean().optional() })),
  sshUsers: z.record(z.string(), z.string()),
  action: z.object({
    accept: z.boolean().optional(),
    holdAndDelegate: z.string().optional(),
    sessionDuration: z.number().optional(),
    allowAgentForwarding: z.boolean().optional(),
    allowLocalPortForwarding: z.boolean().optional(),
    allowRemotePortForwarding: z.boolean().optional(),
  }),
  acceptEnv: z.array(z.string()).optional(),
});
export type SSHRule = z.infer<typeof SSHRule>;

/** A peer as one node sees it. */
export const Peer = z.object({
  id: z.string(),
  key: NodeKeyText,
  name: z.string(),
  dnsName: z.string(),
  hostname: z.string(),
  os: z.string(),
  tags: z.array(z.string()),
  /** The peer's own addresses (/32, /128). */
  addresses: z.array(z.string()),
  /** What WireGuard routes to this peer: its addresses plus its approved subnet and exit routes. */
  allowedIPs: z.array(z.string()),
  endpoints: z.array(z.string()),
  homeRegion: z.number().int().nullable(),
  online: z.boolean(),
  lastSeen: z.string().nullable(),
  keyExpiry: z.string().nullable(),
  /**
   * A plain WireGuard peer (Tailscale's `IsWireGuardOnly`): no disco, no
   * DERP, no endpoints of its own. Only the gateway it goes through has it
   * as a peer; it starts the handshakes, and the gateway answers wherever
   * they come from, as WireGuard does.
   */
  isWireGuardOnly: z.literal(true).optional(),
  /**
   * A plain WireGuard peer's gateway (its node id). The gateway has it as a
   * WireGuard peer; other nodes reach it through the gateway: they route its
   * addresses to the gateway's key (the gateway forwards and filters for it).
   */
  gateway: z.string().optional(),
});
export type Peer = z.infer<typeof Peer>;

/** The receiving node itself: a peer plus what only it needs to know. */
export const SelfNode = Peer.extend({
  user: z.string().nullable(),
  ephemeral: z.boolean(),
  authorized: z.boolean(),
  /** Routes it advertises, approved or not. */
  advertisedRoutes: z.array(z.string()),
  approvedRoutes: z.array(z.string()),
});
export type SelfNode = z.infer<typeof SelfNode>;

export const DnsConfig = z.object({
  /** MagicDNS suffix; peers are `<name>.<suffix>`. Empty when MagicDNS is off. */
  domain: z.string(),
  /** Resolvers the node should use (the tailnet's DNS settings). */
  nameservers: z.array(z.string()),
  /** Search domains, after the MagicDNS suffix (absent from older servers). */
  searchDomains: z.array(z.string()).optional(),
});
export type DnsConfig = z.infer<typeof DnsConfig>;

/** First event of a map stream: everything the node needs. */
export const FullMap = z.object({
  type: z.literal("full"),
  /** Increases by one per event of this stream. */
  seq: z.number().int().nonnegative(),
  node: SelfNode,
  peers: z.array(Peer),
  relayMap: RelayMap,
  dns: DnsConfig,
  packetFilter: z.array(FilterRule),
  sshPolicy: z.object({ rules: z.array(SSHRule) }),
  /** Version of the tailnet policy the filter was compiled from (0: the built-in default). */
  policyVersion: z.number().int().nonnegative(),
});
export type FullMap = z.infer<typeof FullMap>;

/**
 * A change to the previous map of the same stream. Absent fields are
 * unchanged; `peersChanged` carries whole peers (new or changed) and
 * `peersRemoved` their ids.
 */
export const MapDelta = z.object({
  type: z.literal("delta"),
  seq: z.number().int().nonnegative(),
  node: SelfNode.optional(),
  peersChanged: z.array(Peer).optional(),
  peersRemoved: z.array(z.string()).optional(),
  relayMap: RelayMap.optional(),
  dns: DnsConfig.optional(),
  packetFilter: z.array(FilterRule).optional(),
  sshPolicy: z.object({ rules: z.array(SSHRule) }).optional(),
  policyVersion: z.number().int().nonnegative().optional(),
});
export type MapDelta = z.infer<typeof MapDelta>;

export const MapMessage = z.discriminatedUnion("type", [FullMap, MapDelta]);
export type MapMessage = z.infer<typeof MapMessage>;

/**
 * `event: end`, the last event of a map stream the server closes because the
 * node no longer takes part: `deleted`, `key_expired` (also after logout),
 * `key_rotated`, `unauthorized`. No `id:`; the node should not reconnect with
 * the same key unless it re-registers.
 */
export const MapEnd = z.object({
  type: z.literal("end"),
  reason: z.enum(["deleted", "key_expired", "key_rotated", "unauthorized"]),
});
export type MapEnd = z.infer<typeof MapEnd>;

/** Apply a delta to a full map (what a node does with each event after the first). */
export function applyDelta(map: FullMap, delta: MapDelta): FullMap {
  const next: FullMap = { ...map, seq: delta.seq };
  if (delta.node) next.node = delta.node;
  if (delta.relayMap) next.relayMap = delta.relayMap;
  if (delta.dns) next.dns = delta.dns;
  if (delta.packetFilter) next.packetFilter = delta.packetFilter;
  if (delta.sshPolicy) next.sshPolicy = delta.sshPolicy;
  if (delta.policyVersion !== undefined) next.policyVersion = delta.policyVersion;
  if (delta.peersChanged?.length || delta.peersRemoved?.length) {
    const byId = new Map(map.peers.map((p) => [p.id, p]));
    for (const id of delta.peersRemoved ?? []) byId.delete(id);
    for (const p of delta.peersChanged ?? []) byId.set(p.id, p);
    next.peers = [...byId.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
  return next;
}
