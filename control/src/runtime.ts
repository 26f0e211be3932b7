import { join } from "node:path";
import { migrate, openDatabase, type Database, type Models } from "@trellis/db";
import type { Logger } from "@trellis/log";
import type {
  ControlKeyResponse,
  HealthResponse,
  PreAuthKeyInfo,
  RegisterResponse,
  RelayMap,
} from "@trellis/proto";
import { loadOrCreateKeyFile, type KeyPair } from "@trellis/proto/keyfile";
import type { ServerConfig } from "./config";
import { updateEndpoints } from "./endpoints";
import { ControlError } from "./errors";
import { EventBus } from "./events";
import { PgEventBridge } from "./pg-bridge";
import { openMapStream, type MapStreamOptions } from "./map-stream";
import { NetmapService } from "./netmap-service";
import { NodeAuthenticator, type SignedRequest } from "./node-auth";
import { isKnownNodeKey } from "./nodes";
import { loadPolicy, savePolicy, type ActivePolicy } from "./policy-store";
import { createPreAuthKey, listPreAuthKeys, revokePreAuthKey } from "./preauth";
import { Presence } from "./presence";
import { registerNode } from "./register";
import { applyAutoApprovals, approveRoutes } from "./routes";
import { defaultRelayMap } from "./relay-map";
import { completeSetup, isSetupComplete, issueSetupToken } from "./setup";

/** Options for tests and benchmarks; the server uses the defaults. */
export interface RuntimeOptions {
  /** How long an ephemeral node may stay offline before it is removed. */
  ephemeralGraceMs?: number;
  /** Map streams: heartbeat interval and change coalescing. */
  stream?: Pick<MapStreamOptions, "heartbeatMs" | "coalesceMs" | "maxQueued">;
  /** The control key; by default `control.key` (0600) in the data directory. */
  controlKey?: KeyPair;
}

/** Largest signed request body accepted by node endpoints. */
export const MAX_NODE_BODY_BYTES = 64 * 1024;

function parseJsonBody(body: string | Uint8Array): unknown {
  const text = typeof body === "string" ? body : new TextDecoder().decode(body);
  if (text.length > MAX_NODE_BODY_BYTES) {
    throw new ControlError("body_too_large", 413, `request body exceeds ${MAX_NODE_BODY_BYTES} bytes`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ControlError("invalid_json", 400, "request body is not valid JSON");
  }
}

/** What the control plane needs to know about the relay it reports on. */
export interface RelayStatusSource {
  health(): HealthResponse["relay"];
}

export const VERSION = "0.1.0";

/**
 * The control plane of one server process: the open database and the services
 * built on it. The web server creates one at start and route handlers reach it
 * through {@link getRuntime}, so Next.js never bundles database drivers.
 */
export class ControlRuntime {
  private readonly startedAt = Date.now();
  private relay: RelayStatusSource | null = null;
  private defaultRelayMap: RelayMap | null = null;
  private readonly auth: NodeAuthenticator;
  /** Tailnet changes, fanned out to map streams (see events.ts for scale-out). */
  readonly events = new EventBus();
  private readonly netmaps: NetmapService;
  private readonly presence: Presence;
  /** On PostgreSQL: joins this process's events to every other replica's. */
  private bridge: PgEventBridge | null = null;

  private constructor(
    readonly config: ServerConfig,
    readonly db: Database,
    readonly log: Logger,
    controlKey: KeyPair,
    private readonly opts: RuntimeOptions,
  ) {
    this.auth = new NodeAuthenticator(controlKey);
    this.netmaps = new NetmapService(db, { dnsDomain: config.dnsDomain, relayMap: () => this.relayMap() });
    this.presence = new Presence(db, this.events, log.child({ component: "presence" }), {
      ephemeralGraceMs: opts.ephemeralGraceMs ?? 60_000,
    });
    // First listener: every change invalidates the snapshot before streams recompute.
    this.events.subscribe((e) =>
      this.netmaps.invalidate(e.type === "nodes" && e.attrsOnly ? e.ids : undefined),
    );
  }

  /** Apply pending migrations, then connect. */
  static async open(config: ServerConfig, log: Logger, opts: RuntimeOptions = {}): Promise<ControlRuntime> {
    const { applied } = await migrate(config.databaseUrl);
    if (applied.length) log.info({ applied }, "applied database migrations");
    const controlKey = opts.controlKey ?? loadOrCreateKeyFile(join(config.dataDir, "control.key"));
    const db = await openDatabase(config.databaseUrl);
    const rt = new ControlRuntime(config, db, log, controlKey, opts);
    if (db.target.provider === "postgresql") {
      rt.bridge = await PgEventBridge.start(
        db.target.url,
        rt.events,
        log.child({ component: "event-bridge" }),
      );
    }
    // No stream is open in a process that just started: clear what a previous
    // one left behind, and give its ephemeral nodes their grace period.
    await db.prisma.node.updateMany({ where: { online: true }, data: { online: false } });
    const ephemeral = await db.prisma.node.findMany({ where: { ephemeral: true }, select: { id: true } });
    rt.presence.scheduleRemoval(ephemeral.map((n) => n.id));
    return rt;
  }

  attachRelay(relay: RelayStatusSource): void {
    this.relay = relay;
    this.defaultRelayMap = null;
  }

  async health(): Promise<HealthResponse> {
    let database: HealthResponse["database"];
    try {
      const latency = await this.db.ping();
      database = {
        provider: this.db.target.provider,
        status: "ok",
        latency_ms: Math.round(latency * 100) / 100,
      };
    } catch (err) {
      this.log.error({ err }, "database health check failed");
      database = {
        provider: this.db.target.provider,
        status: "error",
        error: err instanceof Error ? err.message.split("\n")[0] : String(err),
      };
    }
    const relay: HealthResponse["relay"] = this.relay
      ? this.relay.health()
      : { status: this.config.embeddedRelay ? "stopped" : "external", path: "/derp", clients: 0 };
    const relayOk = relay.status === "listening" || relay.status === "external";
    return {
      status: database.status === "ok" && relayOk ? "ok" : "degraded",
      version: VERSION,
      uptime_s: Math.round((Date.now() - this.startedAt) / 1000),
      database,
      relay,
    };
  }

  /** The relay's verify-clients check. */
  isKnownNodeKey(key: Uint8Array): Promise<boolean> {
    return isKnownNodeKey(this.db, key);
  }

  isSetupComplete(): Promise<boolean> {
    return isSetupComplete(this.db);
  }

  issueSetupToken(): Promise<string | null> {
    return issueSetupToken(this.db);
  }

  completeSetup(body: unknown) {
    return completeSetup(this.db, body);
  }

  // --- Node-facing API: every call is signed by the node (node-auth.ts) ---------

  /** `GET /api/v1/key`: the key nodes derive their request MAC key with. */
  controlKey(): ControlKeyResponse {
    return { publicKey: this.auth.publicKey };
  }

  /**
   * The relay map in every netmap and at `GET /api/v1/relay-map`. Built once
   * (the embedded relay's STUN port is known once it is attached), so every
   * stream holds the same object and compares it by identity.
   */
  relayMap(): RelayMap {
    if (this.config.relayMap) return this.config.relayMap;
    if (!this.defaultRelayMap) {
      const stun = this.relay?.health().stun_port ?? this.config.stunPort;
      this.defaultRelayMap = defaultRelayMap(this.config.publicUrl, stun ?? null);
    }
    return this.defaultRelayMap;
  }

  /** The node a signed request comes from; 401 unless it is registered and its key unexpired. */
  private async authenticate(req: SignedRequest): Promise<Models.Node> {
    const nodeKey = this.auth.verify(req);
    const node = await this.db.prisma.node.findUnique({ where: { nodeKey } });
    if (!node) throw new ControlError("unknown_node", 401, "this node key is not registered; register first");
    if (node.expiresAt !== null && node.expiresAt <= new Date()) {
      throw new ControlError(
        "node_key_expired",
        401,
        "this node key has expired; register again with a pre-auth key",
      );
    }
    return node;
  }

  /** `POST /api/v1/register`: register (or re-register) the signing node with a pre-auth key. */
  async register(req: SignedRequest): Promise<RegisterResponse> {
    const nodeKey = this.auth.verify(req);
    const { node, response } = await registerNode(this.db, nodeKey, parseJsonBody(req.body), {
      dnsDomain: this.config.dnsDomain,
    });
    // Advertised routes the policy's autoApprovers cover are approved at once.
    // The registration itself is committed: a failure here is logged, not
    // reported to the node, and the next policy save or re-registration retries.
    try {
      await applyAutoApprovals(this.db, (await loadPolicy(this.db)).policy, [node.id]);
    } catch (err) {
      this.log.error({ err, node: node.id }, "auto-approval of advertised routes failed");
    }
    this.log.info({ node: node.id, name: node.name, created: response.created }, "node registered");
    this.events.publish({ type: "nodes", ids: [node.id] });
    return response;
  }

  /** `POST /api/v1/endpoints`: the signing node reports where it can be reached. */
  async updateEndpoints(req: SignedRequest): Promise<{ changed: boolean }> {
    const node = await this.authenticate(req);
    const changed = await updateEndpoints(this.db, node.id, parseJsonBody(req.body));
    if (changed) this.events.publish({ type: "nodes", ids: [node.id], attrsOnly: true });
    return { changed };
  }

  /** `GET /api/v1/map`: the signing node's map as Server-Sent Events. */
  async openMapStream(req: SignedRequest, signal?: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    const node = await this.authenticate(req);
    return openMapStream(
      {
        netmaps: this.netmaps,
        bus: this.events,
        presence: this.presence,
        log: this.log.child({ component: "map" }),
      },
      node,
      { ...this.opts.stream, signal },
    );
  }

  // --- Admin API (callers check the actor's rights) -------------------------------

  createPreAuthKey(body: unknown, actor: string): Promise<{ key: string; info: PreAuthKeyInfo }> {
    return createPreAuthKey(this.db, body, actor);
  }

  listPreAuthKeys(): Promise<PreAuthKeyInfo[]> {
    return listPreAuthKeys(this.db);
  }

  revokePreAuthKey(id: string, actor: string): Promise<PreAuthKeyInfo> {
    return revokePreAuthKey(this.db, id, actor);
  }

  policy(): Promise<ActivePolicy> {
    return loadPolicy(this.db);
  }

  /** Validate (including the policy's tests against the current tailnet) and save a policy; streams get new maps. */
  async setPolicy(text: string, actor: string): Promise<{ version: number }> {
    const snapshot = await this.netmaps.snapshot();
    const saved = await savePolicy(this.db, text, actor, snapshot.topology);
    const approved = await applyAutoApprovals(this.db, saved.policy);
    this.log.info({ version: saved.version, actor, autoApproved: approved.length }, "policy saved");
    this.events.publish({ type: "policy" });
    return { version: saved.version };
  }

  /** Set a node's approved routes (admin); peers' maps follow. */
  async approveRoutes(nodeId: string, body: unknown, actor: string) {
    const result = await approveRoutes(this.db, nodeId, body, actor);
    this.events.publish({ type: "nodes", ids: [nodeId] });
    return result;
  }

  // --- What admin functions need (admin/context.ts) ---------------------------------

  /** The tailnet as the policy engine sees it now. */
  async topology() {
    return (await this.netmaps.snapshot()).topology;
  }

  /** The MagicDNS suffix in force. */
  dnsDomain(): Promise<string> {
    return Promise.resolve(this.config.dnsDomain);
  }

  async close(): Promise<void> {
    this.presence.close();
    await this.bridge?.close();
    await this.db.close();
  }
}
