import { resolve } from "node:path";
import { z } from "zod";
import { RelayMap } from "@trellis/proto";
import type { Prefix } from "@trellis/proto/ip";
import { parseTrustedProxies } from "./http/client-address";

/** Configuration that cannot be used as given; the message names the variable. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** Settings of one Trellis server process, read from the environment. */
export interface ServerConfig {
  /** TCP port for the web app, the control API and the embedded relay. */
  port: number;
  /** Address to listen on. */
  host: string;
  /** Directory for the SQLite database and server keys. */
  dataDir: string;
  /** Database URL: `file:` (SQLite) or `postgres://` (PostgreSQL). */
  databaseUrl: string;
  /** Run the DERP relay in this process (default) or leave it to a separate one. */
  embeddedRelay: boolean;
  /** Externally visible base URL, e.g. https://trellis.example.com (printed and used in links). */
  publicUrl: string;
  /**
   * The web-apps origin: tailnet web apps render there, apart from the
   * console's origin (their scripts must not reach the console, its cookies
   * or the browser node's keys). null: web apps are off.
   */
  apps: { port: number; url: string } | null;
  /** UDP port of the relay's STUN server (null: no STUN). */
  stunPort: number | null;
  /** Admit to the relay only node keys the control plane knows. */
  relayVerifyClients: boolean;
  /** Shared secret of this relay's mesh (64 hex digits), if it meshes. */
  relayMeshKey: string | undefined;
  /** The other relays of the mesh: `wss://…/derp#relaykey:<hex>`, each pinned to its relay key. */
  relayMeshWith: string[];
  /** Allow ws:// mesh peers (a private network); wss:// is required otherwise. */
  relayMeshInsecure: boolean;
  /** Relay map published to nodes; null: one region built from publicUrl (see relay-map.ts). */
  relayMap: RelayMap | null;
  /** MagicDNS suffix of node names. */
  dnsDomain: string;
  /** Secret for session cookies; null: generated once into the data directory (auth.secret). Replicas must share it. */
  authSecret: string | null;
  oidc: OidcConfig | null;
  /**
   * Reverse proxies whose X-Forwarded-For is believed (addresses or CIDR
   * prefixes); empty: the client is the socket's peer.
   */
  trustedProxies: Prefix[];
  /** Login throttle (control/src/auth/throttle.ts): free failures per account and address, first and longest delay. */
  login: { freeAttempts: number; firstDelayMs: number; maxDelayMs: number };
}

const Env = z.object({
  PORT: z.coerce
    .number({ error: "PORT must be a number" })
    .int("PORT must be an integer")
    .min(1, "PORT must be between 1 and 65535")
    .max(65535, "PORT must be between 1 and 65535")
    .default(8080),
  HOST: z.string().min(1).default("0.0.0.0"),
  TRELLIS_DATA_DIR: z.string().min(1).default("data"),
  DATABASE_URL: z.string().optional(),
  TRELLIS_EMBEDDED_RELAY: z.enum(["true", "false", "1", "0"]).default("true"),
  TRELLIS_PUBLIC_URL: z.url("TRELLIS_PUBLIC_URL must be an absolute URL").optional(),
  TRELLIS_APPS_PORT: z
    .union(
      [
        z.literal("off"),
        z.coerce
          .number({ error: "TRELLIS_APPS_PORT must be a port number or off" })
          .int("TRELLIS_APPS_PORT must be an integer")
          .min(1, "TRELLIS_APPS_PORT must be between 1 and 65535")
          .max(65535, "TRELLIS_APPS_PORT must be between 1 and 65535"),
      ],
      { error: "TRELLIS_APPS_PORT must be a port number or off" },
    )
    .optional(),
  TRELLIS_APPS_URL: z.url("TRELLIS_APPS_URL must be an absolute URL").optional(),
  TRELLIS_STUN_PORT: z
    .union([
      z.literal("off"),
      z.coerce
        .number({ error: "TRELLIS_STUN_PORT must be a port number or off" })
        .int("TRELLIS_STUN_PORT must be an integer")
        .min(0, "TRELLIS_STUN_PORT must be between 0 and 65535")
        .max(65535, "TRELLIS_STUN_PORT must be between 0 and 65535"),
    ])
    .default(3478),
  TRELLIS_RELAY_VERIFY_CLIENTS: z.enum(["true", "false", "1", "0"]).default("true"),
  TRELLIS_RELAY_MESH_KEY: z
    .string()
    .regex(/^[0-9a-f]{64}$/, "TRELLIS_RELAY_MESH_KEY must be 64 lowercase hex digits")
    .optional(),
  TRELLIS_RELAY_MESH_WITH: z.string().default(""),
  TRELLIS_RELAY_MESH_INSECURE: z.enum(["true", "false", "1", "0"]).default("false"),
  TRELLIS_RELAY_MAP: z
    .string()
    .max(256 * 1024)
    .optional(),
  TRELLIS_DNS_DOMAIN: z
    .string()
    .regex(
      /^(?=.{1,200}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/,
      "TRELLIS_DNS_DOMAIN must be a lowercase DNS name such as trellis.internal",
    )
    .default("trellis.internal"),
  TRELLIS_AUTH_SECRET: z.string().min(32, "TRELLIS_AUTH_SECRET must be at least 32 characters").optional(),
  TRELLIS_OIDC_ISSUER: z.url("TRELLIS_OIDC_ISSUER must be an absolute URL").optional(),
  TRELLIS_OIDC_CLIENT_ID: z.string().min(1).optional(),
  TRELLIS_OIDC_CLIENT_SECRET: z.string().min(1).optional(),
  TRELLIS_OIDC_NAME: z.string().min(1).max(60).default("Single sign-on"),
  TRELLIS_OIDC_SCOPES: z.string().default("openid email profile groups"),
  TRELLIS_OIDC_GROUPS_CLAIM: z.string().min(1).default("groups"),
  TRELLIS_OIDC_ADMIN_GROUPS: z.string().default(""),
  TRELLIS_OIDC_AUDITOR_GROUPS: z.string().default(""),
  TRELLIS_OIDC_ALLOWED_GROUPS: z.string().default(""),
  TRELLIS_TRUSTED_PROXIES: z.string().default(""),
  TRELLIS_LOGIN_FREE_ATTEMPTS: z.coerce
    .number({ error: "TRELLIS_LOGIN_FREE_ATTEMPTS must be a number" })
    .int("TRELLIS_LOGIN_FREE_ATTEMPTS must be a whole number")
    .min(1, "TRELLIS_LOGIN_FREE_ATTEMPTS must be between 1 and 100")
    .max(100, "TRELLIS_LOGIN_FREE_ATTEMPTS must be between 1 and 100")
    .default(5),
  TRELLIS_LOGIN_DELAY_SECONDS: z.coerce
    .number({ error: "TRELLIS_LOGIN_DELAY_SECONDS must be a number" })
    .min(0.1, "TRELLIS_LOGIN_DELAY_SECONDS must be between 0.1 and 3600")
    .max(3600, "TRELLIS_LOGIN_DELAY_SECONDS must be between 0.1 and 3600")
    .default(1),
  TRELLIS_LOGIN_MAX_DELAY_SECONDS: z.coerce
    .number({ error: "TRELLIS_LOGIN_MAX_DELAY_SECONDS must be a number" })
    .min(1, "TRELLIS_LOGIN_MAX_DELAY_SECONDS must be between 1 and 86400")
    .max(86400, "TRELLIS_LOGIN_MAX_DELAY_SECONDS must be between 1 and 86400")
    .default(900),
});

/** OpenID Connect login, configured when issuer, client id and secret are all set. */
export interface OidcConfig {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Label of the login button. */
  name: string;
  scopes: string;
  groupsClaim: string;
  adminGroups: string[];
  auditorGroups: string[];
  allowedGroups: string[];
}

const list = (raw: string) =>
  raw
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

function parseRelayMap(raw: string | undefined): RelayMap | null {
  if (raw === undefined || raw.trim() === "") return null;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new ConfigError("TRELLIS_RELAY_MAP: not valid JSON");
  }
  const parsed = RelayMap.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`TRELLIS_RELAY_MAP: ${issue.path.join(".") || "(map)"}: ${issue.message}`);
  }
  if (Object.keys(parsed.data.regions).length === 0) {
    throw new ConfigError("TRELLIS_RELAY_MAP: needs at least one region");
  }
  return parsed.data;
}

function parseMeshWith(raw: string, insecure: boolean): string[] {
  const urls = raw
    .split(",")
    .map((u) => u.trim())
    .filter(Boolean);
  for (const u of urls) {
    const m = /^(wss?):\/\/[^/#]+\/[^#\s]*(#relaykey:[0-9a-f]{64})?$/.exec(u);
    if (!m) {
      throw new ConfigError(
        `TRELLIS_RELAY_MESH_WITH: "${u}" is not a ws:// or wss:// URL of a relay's /derp`,
      );
    }
    if (!m[2]) {
      throw new ConfigError(
        `TRELLIS_RELAY_MESH_WITH: "${u}" needs the other relay's key pinned: ${u}#relaykey:<64 hex digits> (its /api/health shows server_key)`,
      );
    }
    if (m[1] === "ws" && !insecure) {
      throw new ConfigError(
        `TRELLIS_RELAY_MESH_WITH: "${u}" must use wss:// (or set TRELLIS_RELAY_MESH_INSECURE=true on a private network)`,
      );
    }
  }
  return urls;
}

function trustedProxies(raw: string): Prefix[] {
  const { prefixes, bad } = parseTrustedProxies(list(raw));
  if (bad !== undefined) {
    throw new ConfigError(`TRELLIS_TRUSTED_PROXIES: "${bad}" is not an IP address or CIDR prefix`);
  }
  return prefixes;
}

function loginThrottle(e: z.infer<typeof Env>): ServerConfig["login"] {
  const firstDelayMs = Math.round(e.TRELLIS_LOGIN_DELAY_SECONDS * 1000);
  const maxDelayMs = Math.round(e.TRELLIS_LOGIN_MAX_DELAY_SECONDS * 1000);
  if (maxDelayMs < firstDelayMs) {
    throw new ConfigError("TRELLIS_LOGIN_MAX_DELAY_SECONDS: must be at least TRELLIS_LOGIN_DELAY_SECONDS");
  }
  return { freeAttempts: e.TRELLIS_LOGIN_FREE_ATTEMPTS, firstDelayMs, maxDelayMs };
}

function parseOidc(e: z.infer<typeof Env>): OidcConfig | null {
  const set = [e.TRELLIS_OIDC_ISSUER, e.TRELLIS_OIDC_CLIENT_ID, e.TRELLIS_OIDC_CLIENT_SECRET];
  if (set.every((v) => v === undefined)) return null;
  if (set.some((v) => v === undefined)) {
    throw new ConfigError(
      "TRELLIS_OIDC_ISSUER, TRELLIS_OIDC_CLIENT_ID and TRELLIS_OIDC_CLIENT_SECRET must be set together",
    );
  }
  return {
    issuer: e.TRELLIS_OIDC_ISSUER!.replace(/\/+$/, ""),
    clientId: e.TRELLIS_OIDC_CLIENT_ID!,
    clientSecret: e.TRELLIS_OIDC_CLIENT_SECRET!,
    name: e.TRELLIS_OIDC_NAME,
    scopes: e.TRELLIS_OIDC_SCOPES,
    groupsClaim: e.TRELLIS_OIDC_GROUPS_CLAIM,
    adminGroups: list(e.TRELLIS_OIDC_ADMIN_GROUPS),
    auditorGroups: list(e.TRELLIS_OIDC_AUDITOR_GROUPS),
    allowedGroups: list(e.TRELLIS_OIDC_ALLOWED_GROUPS),
  };
}

/**
 * The web-apps origin: its own port (default: PORT+2), at the public
 * URL's scheme and host unless TRELLIS_APPS_URL says otherwise (behind a
 * proxy). It must differ from the console's origin and be same-site with it
 * (the console frames it and hands it connections of the browser's node).
 */
function appsOrigin(
  portSetting: "off" | number | undefined,
  urlSetting: string | undefined,
  port: number,
  publicUrl: string,
): ServerConfig["apps"] {
  if (portSetting === "off") return null;
  // PORT+2: PORT+1 (8081) is the standalone relay's default port.
  const appsPort = portSetting ?? port + 2;
  if (appsPort === port) throw new ConfigError("TRELLIS_APPS_PORT: must differ from PORT");
  let url: string;
  if (urlSetting) url = new URL(urlSetting).origin;
  else {
    const u = new URL(publicUrl);
    u.port = String(appsPort);
    url = u.origin;
  }
  if (url === new URL(publicUrl).origin)
    throw new ConfigError(
      "TRELLIS_APPS_URL: must be another origin than TRELLIS_PUBLIC_URL (another port or host)",
    );
  return { port: appsPort, url };
}

/** Parse the environment; bad values raise a {@link ConfigError} naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): ServerConfig {
  const parsed = Env.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`${issue.path.join(".")}: ${issue.message}`);
  }
  const e = parsed.data;
  const dataDir = resolve(cwd, e.TRELLIS_DATA_DIR);
  const databaseUrl =
    e.DATABASE_URL && e.DATABASE_URL.trim() !== ""
      ? e.DATABASE_URL
      : `file:${resolve(dataDir, "trellis.db")}`;
  const meshInsecure = e.TRELLIS_RELAY_MESH_INSECURE === "true" || e.TRELLIS_RELAY_MESH_INSECURE === "1";
  const shownHost = e.HOST === "0.0.0.0" || e.HOST === "::" ? "localhost" : e.HOST;
  const publicUrl = (e.TRELLIS_PUBLIC_URL ?? `http://${shownHost}:${e.PORT}`).replace(/\/+$/, "");
  return {
    port: e.PORT,
    host: e.HOST,
    apps: appsOrigin(e.TRELLIS_APPS_PORT, e.TRELLIS_APPS_URL, e.PORT, publicUrl),
    dataDir,
    databaseUrl,
    embeddedRelay: e.TRELLIS_EMBEDDED_RELAY === "true" || e.TRELLIS_EMBEDDED_RELAY === "1",
    publicUrl,
    stunPort: e.TRELLIS_STUN_PORT === "off" ? null : e.TRELLIS_STUN_PORT,
    relayVerifyClients: e.TRELLIS_RELAY_VERIFY_CLIENTS === "true" || e.TRELLIS_RELAY_VERIFY_CLIENTS === "1",
    relayMeshKey: e.TRELLIS_RELAY_MESH_KEY,
    relayMeshWith: parseMeshWith(e.TRELLIS_RELAY_MESH_WITH, meshInsecure),
    relayMeshInsecure: meshInsecure,
    relayMap: parseRelayMap(e.TRELLIS_RELAY_MAP),
    dnsDomain: e.TRELLIS_DNS_DOMAIN,
    authSecret: e.TRELLIS_AUTH_SECRET ?? null,
    oidc: parseOidc(e),
    trustedProxies: trustedProxies(e.TRELLIS_TRUSTED_PROXIES),
    login: loginThrottle(e),
  };
}
