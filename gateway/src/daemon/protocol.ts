// The local protocol between the `trellis` CLI and `trellis daemon`: JSON
// lines over a Unix socket (`<state-dir>/trellisd.sock`, mode 0600, so only
// the daemon's user — root on a gateway — may talk to it; 0660 for the group
// of --socket-group, as the systemd unit runs it). A client sends one
// request line and reads one response line; both are validated here, both are
// bounded. Secrets (the pre-auth key) travel only this way, never in argv.
import { z } from "zod";
import { CidrText, LIMITS } from "@trellis/proto/node";

/** The longest line either side accepts (a status with many peers fits easily). */
export const MAX_LINE_BYTES = 1024 * 1024;
/** Requests are small: anything longer is refused before parsing. */
export const MAX_REQUEST_BYTES = 16 * 1024;
export const SOCKET_NAME = "trellisd.sock";
export const LOG_NAME = "trellisd.log";
export const PID_NAME = "trellisd.pid";

const TunName = z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, "a TUN name is 1-15 characters of [A-Za-z0-9_.-]");
const Hostname = z.string().trim().min(1).max(LIMITS.hostname);
const Routes = z.array(CidrText).max(LIMITS.routes);

const ExitNodeName = z.string().trim().min(1).max(255);

/** What `trellis up` asks for; kept in the state directory without the auth key. */
export const UpPrefs = z.strictObject({
  loginServer: z
    .url("--login-server must be an http(s) URL")
    .max(2048)
    .refine((u) => /^https?:\/\//.test(u), "--login-server must be an http(s) URL"),
  hostname: Hostname,
  advertiseRoutes: Routes.default([]),
  /** Offer this node as an exit node: 0.0.0.0/0 and ::/0 are advertised besides advertiseRoutes. */
  advertiseExitNode: z.boolean().default(false),
  /** TUN mode: route the subnet routes peers serve into the TUN device (Tailscale's --accept-routes). */
  acceptRoutes: z.boolean().default(false),
  /** TUN mode: point the system's resolv.conf at MagicDNS while up (Tailscale's --accept-dns; off by default here). */
  acceptDns: z.boolean().default(false),
  /** TUN mode: send internet traffic through this peer (name or address), an approved exit node. */
  exitNode: ExitNodeName.nullable().default(null),
  /** true: the userspace stack (no root); false: a TUN device. */
  userspace: z.boolean().default(false),
  tun: TunName.default("trellis0"),
  /** Userspace mode: TCP to these ports of the node is forwarded to 127.0.0.1 on the same port. */
  forwardTcp: z.array(z.number().int().min(1).max(65535)).max(64).default([]),
  /** UDP port for direct paths (0: any free port; a taken port falls back to any). */
  port: z.number().int().min(0).max(65535).default(41641),
  /** TUN mode's data plane: native (gateway/dataplane), wasm, or auto (native when its addon loads). */
  dataplane: z.enum(["auto", "native", "wasm"]).default("auto"),
});
export type UpPrefs = z.infer<typeof UpPrefs>;

/** What `trellis set` changes on a running node: only the fields given. */
export const SetPrefs = z.strictObject({
  hostname: Hostname.optional(),
  advertiseRoutes: Routes.optional(),
  advertiseExitNode: z.boolean().optional(),
  acceptRoutes: z.boolean().optional(),
  acceptDns: z.boolean().optional(),
  /** null: stop using an exit node. */
  exitNode: ExitNodeName.nullable().optional(),
});
export type SetPrefs = z.infer<typeof SetPrefs>;

export const Request = z.discriminatedUnion("op", [
  z.strictObject({
    op: z.literal("up"),
    prefs: UpPrefs,
    authKey: z.string().min(16).max(LIMITS.preAuthKey).optional(),
    /** How long to wait for registration and the first map. */
    waitMs: z.number().int().min(1).max(300_000).default(30_000),
  }),
  z.strictObject({
    op: z.literal("set"),
    prefs: SetPrefs,
    /** How long to wait for the control server's map to show the new settings. */
    waitMs: z.number().int().min(1).max(60_000).default(10_000),
  }),
  z.strictObject({ op: z.literal("down") }),
  z.strictObject({ op: z.literal("logout") }),
  z.strictObject({ op: z.literal("status") }),
  z.strictObject({ op: z.literal("netcheck") }),
  z.strictObject({
    op: z.literal("ping"),
    peer: z.string().min(1).max(255),
    timeoutMs: z.number().int().min(1).max(60_000).default(5000),
  }),
]);
export type Request = z.input<typeof Request>;

export const SelfInfo = z.object({
  name: z.string(),
  dnsName: z.string(),
  addresses: z.array(z.string()),
});

export const PeerInfo = z.object({
  name: z.string(),
  dnsName: z.string(),
  addresses: z.array(z.string()),
  online: z.boolean(),
  path: z.enum(["direct", "relay", "none"]),
  pathDetail: z.string(),
  rttMs: z.number().nullable(),
  rxBytes: z.number(),
  txBytes: z.number(),
  lastHandshake: z.number().nullable(),
});

export const Status = z.object({
  /** stopped: no engine (down, or never up); starting: no map yet; running: a map arrived. */
  state: z.enum(["stopped", "starting", "running", "failed"]),
  loginServer: z.string().nullable(),
  mode: z.enum(["tun", "userspace"]).nullable(),
  tun: z.string().nullable(),
  /** TUN mode: which data plane moves the packets. */
  dataplane: z.enum(["native", "wasm"]).nullable().default(null),
  /** The control connection's phase (connecting, connected, retrying, …). */
  control: z.string().nullable(),
  /** Why the engine stopped, when it failed or the server ended it. */
  error: z.string().nullable(),
  self: SelfInfo.nullable(),
  advertisedRoutes: z.array(z.string()),
  approvedRoutes: z.array(z.string()),
  /** What up and set asked for (null when not logged in). */
  prefs: UpPrefs.nullable(),
  /** TUN mode: the subnet routes of peers routed into the device (--accept-routes), or why not. */
  acceptedRoutes: z.object({ routes: z.array(z.string()), error: z.string().nullable() }).nullable(),
  /** TUN mode: the MagicDNS resolver's address, whether resolv.conf points at it (--accept-dns), or why not. */
  dns: z
    .object({ resolver: z.string().nullable(), systemConfigured: z.boolean(), error: z.string().nullable() })
    .nullable(),
  /** The exit node in use (--exit-node): whether internet traffic goes through it now, or why not. */
  exitNode: z.object({ name: z.string(), routing: z.boolean(), error: z.string().nullable() }).nullable(),
  /** The approved routes this node serves (TUN mode: kernel forwarding and masquerade; userspace mode: its own sockets), or why it cannot. */
  forwarding: z.object({ routes: z.array(z.string()), error: z.string().nullable() }).nullable(),
  relay: z.object({
    region: z.number().nullable(),
    connected: z.boolean(),
    latencyMs: z.number().nullable(),
  }),
  /** The UDP socket for direct paths: its port and the endpoints published for it. */
  udp: z.object({ port: z.number(), endpoints: z.array(z.string()) }).nullable(),
  peers: z.array(PeerInfo),
  drops: z.record(z.string(), z.number()),
});
export type Status = z.infer<typeof Status>;

/** What `trellis netcheck` reports (the engine's NetcheckReport). */
export const Netcheck = z.object({
  udp: z.boolean().nullable(),
  port: z.number().nullable(),
  stun: z.array(
    z.object({ server: z.string(), mapped: z.string().nullable(), latencyMs: z.number().nullable() }),
  ),
  mappingVariesByDestIP: z.boolean().nullable(),
  endpoints: z.array(z.string()),
  relayLatencyMs: z.record(z.string(), z.number().nullable()),
  homeRegion: z.number().nullable(),
});
export type Netcheck = z.infer<typeof Netcheck>;

export const PingAnswer = z.object({
  rttMs: z.number(),
  path: z.enum(["direct", "relay", "none"]),
  peer: z.string().nullable(),
  address: z.string(),
  /** Who built the echo request: the userspace stack, or the engine for the host (TUN mode). */
  via: z.enum(["stack", "engine"]),
});
export type PingAnswer = z.infer<typeof PingAnswer>;

/** Error codes: the control server's (`invalid_auth_key`, …), `network`, or the daemon's own. */
export const ErrorBody = z.object({ code: z.string().max(64), message: z.string().max(4096) });
export type ErrorBody = z.infer<typeof ErrorBody>;

export const Response = z.union([
  z.object({ ok: z.literal(false), error: ErrorBody }),
  z.object({ ok: z.literal(true), status: Status }),
  z.object({ ok: z.literal(true), ping: PingAnswer }),
  z.object({ ok: z.literal(true), netcheck: Netcheck }),
  z.object({ ok: z.literal(true), loggedOut: z.boolean() }),
]);
export type Response = z.infer<typeof Response>;
