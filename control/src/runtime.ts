import { accessSync, constants, statfsSync } from "node:fs";
import { dirname, join } from "node:path";
import { migrate, openDatabase, parseDatabaseUrl, type Database, type Models } from "@trellis/db";
import type { Logger } from "@trellis/log";
import {
  LogoutRequest,
  RelayVerifyRequest,
  type ControlKeyResponse,
  type HealthResponse,
  type RegisterResponse,
  type RelayMap,
  type RelayVerifyResponse,
} from "@trellis/proto";
import { loadOrCreateKeyFile, type KeyPair } from "@trellis/proto/keyfile";
import type { ServerConfig } from "./config";
import type { Actor } from "./auth/actor";
import { requireScope } from "./auth/actor";
import { LoginThrottle, throttleOptions, type ThrottleOptions } from "./auth/throttle";
import { ingestConnections } from "./connlog";
import { updateEndpoints } from "./endpoints";
import { plainPeersSeen } from "./plain-peers";
import { ControlError } from "./errors";
import { attrsOnlyIds, EventBus } from "./events";
import { PgEventBridge, type BridgeOptions } from "./pg-bridge";
import { recordChange } from "./outbox";
import { publicDatabaseError, recentWriteFault } from "./db-errors";
import { preparePrivateDir, restrictDatabaseFiles } from "./data-dir";
import { startMapStream, type MapSink, type MapStreamDeps, type MapStreamOptions } from "./map-stream";
import { NetmapService, type MapConfig } from "./netmap-service";
import { SharedReplayGuard } from "./replay";
import { SqliteWriteWatch, type SqliteWatchOptions } from "./sqlite-watch";
import { NodeAuthenticator, type ReplayPool, type SignedRequest, type VerifiedRequest } from "./node-auth";
import { admittedNodeKeys } from "./nodes";
import { sharedPolicyChecker, type PolicyCheck } from "./policy-check/pool";
import { PolicyStore } from "./policy-store";
import { Presence, type PresenceOptions } from "./presence";
import { registerNode, wireguardOnlyError } from "./register";
import { applyAutoApprovals } from "./routes";
import { defaultRelayMap } from "./relay-map";
import { loadSettings, type Settings } from "./settings";
import { completeSetup, isSetupComplete, issueSetupToken } from "./setup";
import { SIGNAL_RATE, sendSignal, TokenBuckets, type RateLimit } from "./signal";
import { audit, nodeRef } from "./audit";
import { parseJson } from "./http/body";
import { parseOr400 } from "./errors-util";
import { retireNames } from "./names";

/** Options for tests and benchmarks; the server uses the defaults. */
export interface RuntimeOptions {
  /** How long an ephemeral node may stay offline before it is removed. */
  ephemeralGraceMs?: number;
  /** PostgreSQL: how often replicas renew their heartbeat, and when one is taken for dead (presence.ts). */
  replicas?: Pick<PresenceOptions, "heartbeatMs" | "ttlMs">;
  /** Map streams: heartbeat interval and change coalescing. */
  stream?: Pick<MapStreamOptions, "heartbeatMs" | "coalesceMs" | "maxQueuedBytes">;
  /** The control key; by default `control.key` (0600) in the data directory. */
  controlKey?: KeyPair;
  /** Signals each node may send: 20/s, bursts of 40 by default. */
  signalRate?: RateLimit;
  /** PostgreSQL: how often the outbox is checked whatever NOTIFY said (pg-bridge.ts). */
  changes?: BridgeOptions;
  /** SQLite: how often the file is checked for commits by other processes (sqlite-watch.ts). */
  externalWrites?: SqliteWatchOptions;
  /** The login throttle's rules; by default from the configuration (TRELLIS_LOGIN_*). */
  loginThrottle?: ThrottleOptions;
  /** Where policies are checked; the process's pool of worker threads by default (policy-check/pool.ts). */
  policyCheck?: PolicyCheck;
}

/** What the control plane needs to know about the relay it reports on. */
export interface RelayStatusSource {
  health(): HealthResponse["relay"];
  /**
   * Ask verify-clients again about every connected node (runtime.ts calls it
   * when nodes change, so a deleted or expired node's connection is dropped).
   */
  revalidate?(): Promise<number>;
}

/** How long node changes gather before the relay is asked to revalidate its clients. */
const RELAY_RECHECK_MS = 100;

export const VERSION = "0.1.0";

/**
 * The control plane of one server process: the open database and the services
 * built on it. The web server creates one at start and route handlers reach it
 * through {@link getRuntime}, so Next.js never bundles database drivers.
 */
/** What an anonymous health check learns of a database error (the log has the error). */
const UNAVAILABLE = "the database is unavailable; the server's log has the details";

export class ControlRuntime {
  private readonly startedAt = Date.now();
  private relay: RelayStatusSource | null = null;
  private defaultRelayMap: RelayMap | null = null;
  private readonly auth: NodeAuthenticator;
  /** Tailnet changes, fanned out to map streams (see events.ts for scale-out). */
  readonly events: EventBus;
  /** The policy in force, parsed once per version (policy-store.ts). */
  readonly policies: PolicyStore;
  /** Policy checks (dry runs and saves), off the event loop. */
  readonly policyCheck: PolicyCheck;
  private readonly netmaps: NetmapService;
  private readonly presence: Presence;
  /** On PostgreSQL: joins this process's events to every other replica's. */
  private bridge: PgEventBridge | null = null;
  /** On PostgreSQL: refuses a request replayed to another replica (replay.ts). */
  private replayGuard: SharedReplayGuard | null = null;
  /** On SQLite: notices what trellis-server (the admin CLI) wrote into the file (sqlite-watch.ts). */
  private writeWatch: SqliteWriteWatch | null = null;
  /** The settings in force, loaded once and dropped on every `settings` event (any replica's). */
  private settingsLoad: Promise<Settings> | null = null;
  /** The last settings loaded, for the synchronous relay map endpoint. */
  private lastSettings: Settings | null = null;
  private mapConfigCache: { from: Settings; config: MapConfig } | null = null;
  private readonly signalLimiter: TokenBuckets;
  private readonly mapLog: Logger;
  /** Failed sign-ins, in the database (auth/throttle.ts): what password logins are checked against. */
  readonly loginThrottle: LoginThrottle;

  private constructor(
    readonly config: ServerConfig,
    readonly db: Database,
    readonly log: Logger,
    controlKey: KeyPair,
    private readonly opts: RuntimeOptions,
  ) {
    this.auth = new NodeAuthenticator(controlKey);
    this.events = new EventBus(log.child({ component: "events" }));
    this.policies = new PolicyStore(db);
    this.policyCheck = opts.policyCheck ?? sharedPolicyChecker();
    this.mapLog = log.child({ component: "map" });
    this.signalLimiter = new TokenBuckets(opts.signalRate ?? SIGNAL_RATE);
    const login = config.login;
    this.loginThrottle = new LoginThrottle(
      db,
      opts.loginThrottle ?? throttleOptions(login.freeAttempts, login.firstDelayMs, login.maxDelayMs),
      log.child({ component: "login-throttle" }),
    );
    this.netmaps = new NetmapService(db, {
      config: () => this.mapConfig(),
      policy: () => this.policies.current(),
      // Expiry is noticed by each replica's own timer: announced locally only (an origin is never forwarded).
      onExpire: (ids) => this.events.publish({ type: "nodes", ids, origin: "expiry" }),
    });
    this.presence = new Presence(db, this.events, log.child({ component: "presence" }), {
      ephemeralGraceMs: opts.ephemeralGraceMs ?? 60_000,
      ...opts.replicas,
    });
    // First listener: every change invalidates the snapshot (and settings
    // changes the cached settings) before streams recompute.
    this.events.subscribe((e) => {
      if (e.type === "signal") return;
      if (e.type === "settings") {
        this.settingsLoad = null;
        // Reload now, for the synchronous relayMap(); a failure is retried by the next caller.
        this.settings().catch((err: unknown) => this.log.error({ err }, "could not load settings"));
      }
      if (e.type === "policy") this.netmaps.invalidatePolicy();
      else this.netmaps.invalidate(attrsOnlyIds(e));
    });
  }

  /** Apply pending migrations, then connect. */
  static async open(config: ServerConfig, log: Logger, opts: RuntimeOptions = {}): Promise<ControlRuntime> {
    // Before anything is written into it: keys, auth.secret, the database.
    preparePrivateDir(config.dataDir, log);
    const target = parseDatabaseUrl(config.databaseUrl);
    const { applied } = await migrate(config.databaseUrl);
    if (applied.length) log.info({ applied }, "applied database migrations");
    if (target.file) restrictDatabaseFiles(target.file);
    const controlKey = opts.controlKey ?? loadOrCreateKeyFile(join(config.dataDir, "control.key"));
    const db = await openDatabase(config.databaseUrl);
    const rt = new ControlRuntime(config, db, log, controlKey, opts);
    if (db.target.provider === "postgresql") {
      rt.bridge = await PgEventBridge.start(
        db,
        rt.events,
        log.child({ component: "event-bridge" }),
        opts.changes,
      );
      rt.replayGuard = new SharedReplayGuard(db, log);
    } else {
      rt.writeWatch = await SqliteWriteWatch.start(db, rt.events, log, opts.externalWrites);
    }
    await rt.settings();
    // Clear what a previous process left behind (presence.ts), and give
    // ephemeral nodes left offline their grace period.
    await rt.presence.start();
    const ephemeral = await db.prisma.node.findMany({ where: { ephemeral: true }, select: { id: true } });
    rt.presence.scheduleRemoval(ephemeral.map((n) => n.id));
    rt.loginThrottle.startPruning();
    return rt;
  }

  /**
   * The relay running in this process. Its verify-clients asks
   * `verifyRelayClients`, and every change to nodes (here or on another
   * replica) makes it check its connected nodes again.
   */
  attachRelay(relay: RelayStatusSource): void {
    this.relay = relay;
    this.defaultRelayMap = null;
    this.mapConfigCache = null;
    this.netmaps.invalidate();
    const revalidate = relay.revalidate?.bind(relay);
    if (!revalidate) return;
    let timer: ReturnType<typeof setTimeout> | null = null;
    this.detachRelay?.();
    const unsubscribe = this.events.subscribe((e) => {
      if (e.type !== "nodes" || e.attrsOnly || timer) return;
      timer = setTimeout(() => {
        timer = null;
        revalidate().catch((err: unknown) => this.log.warn({ err }, "relay revalidation failed"));
      }, RELAY_RECHECK_MS);
      timer.unref?.();
    });
    this.detachRelay = () => {
      unsubscribe();
      if (timer) clearTimeout(timer);
    };
  }

  private detachRelay: (() => void) | null = null;

  // --- Settings (settings.ts has the admin functions) ------------------------------

  /** The tailnet and DNS settings in force, cached until a `settings` event. */
  settings(): Promise<Settings> {
    if (!this.settingsLoad) {
      const load = loadSettings(this.db, this.config);
      this.settingsLoad = load;
      load.then(
        (s) => {
          if (this.settingsLoad === load) this.lastSettings = s;
        },
        () => {
          if (this.settingsLoad === load) this.settingsLoad = null;
        },
      );
    }
    return this.settingsLoad;
  }

  /** DNS config, DNS suffix and relay map for every map; one object per settings load. */
  private async mapConfig(): Promise<MapConfig> {
    const s = await this.settings();
    if (this.mapConfigCache?.from !== s) {
      const d = s.dns;
      this.mapConfigCache = {
        from: s,
        config: {
          dnsDomain: d.domain,
          // MagicDNS off: no suffix (nodes resolve no tailnet names), resolvers as given.
          dns: {
            domain: d.magicDns ? d.domain : "",
            nameservers: d.nameservers,
            searchDomains: d.searchDomains,
          },
          relayMap: s.tailnet.relayMap ?? this.baseRelayMap(),
        },
      };
    }
    return this.mapConfigCache.config;
  }

  /**
   * Health of this process. `GET /api/health` asks without `detail`, for
   * anyone: a database error is then only "unavailable". With `detail` (the
   * server's own callers and tests) it is the database's message without
   * connection details (db-errors.ts). The log has the errors whole.
   */
  async health(opts: { detail?: boolean } = {}): Promise<HealthResponse> {
    const detail = opts.detail ?? true;
    let database: HealthResponse["database"];
    try {
      const latency = await this.db.ping();
      const writes = this.writeState();
      database = {
        provider: this.db.target.provider,
        status: writes === "ok" ? "ok" : "error",
        latency_ms: Math.round(latency * 100) / 100,
        writes,
        ...(writes === "full"
          ? { error: "the disk is full: changes cannot be saved" }
          : writes === "read_only"
            ? { error: "the database is read-only: changes cannot be saved" }
            : {}),
      };
    } catch (err) {
      this.log.error({ err }, "database health check failed");
      database = {
        provider: this.db.target.provider,
        status: "error",
        error: detail ? publicDatabaseError(err) : UNAVAILABLE,
      };
    }
    // On PostgreSQL: is this replica hearing the others, and how far has it applied their changes?
    const events = this.bridge?.health();
    if (events) {
      database.events = !detail && events.error !== undefined ? { ...events, error: UNAVAILABLE } : events;
    }
    const eventsOk = !events || (events.listening && events.error === undefined);
    const relay: HealthResponse["relay"] = this.relay
      ? this.relay.health()
      : { status: this.config.embeddedRelay ? "stopped" : "external", path: "/derp", clients: 0 };
    const relayOk = relay.status === "listening" || relay.status === "external";
    return {
      status: database.status === "ok" && eventsOk && relayOk ? "ok" : "degraded",
      version: VERSION,
      uptime_s: Math.round((Date.now() - this.startedAt) / 1000),
      database,
      relay,
    };
  }

  /**
   * Whether the database takes writes. SQLite: its file's filesystem, asked
   * directly (read-only, or under 64 KiB free). PostgreSQL: a write refused
   * as "disk full" or "read-only" within the last minute (errors.ts notes them).
   */
  private writeState(): "ok" | "full" | "read_only" {
    const file = this.db.target.file;
    if (!file || file === ":memory:") return recentWriteFault() ?? "ok";
    try {
      accessSync(file, constants.W_OK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EROFS" || (err as NodeJS.ErrnoException).code === "EACCES")
        return "read_only";
    }
    try {
      const fs = statfsSync(dirname(file));
      if (fs.bavail * fs.bsize < 64 * 1024) return "full";
    } catch {
      // statfs is not everywhere: the file checks above are what there is
    }
    return "ok";
  }

  /** verify-clients of the relay in this process: which of these keys may use it. */
  admitsNodeKeys(keys: Uint8Array[]): Promise<boolean[]> {
    return admittedNodeKeys(this.db, keys);
  }

  /**
   * `POST /api/v1/relay/verify`: the same question from a relay running
   * apart. Unsigned, like Tailscale's derper admission URL: it answers only
   * about keys the caller names, and node keys are 256-bit values nobody
   * can guess, so it reveals nothing about who else is in the tailnet.
   */
  async verifyRelayClients(body: Uint8Array | string): Promise<RelayVerifyResponse> {
    const req = parseOr400(RelayVerifyRequest, parseJson(body), "invalid relay verification");
    return { allowed: await admittedNodeKeys(this.db, req.nodeKeys) };
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
    return this.lastSettings?.tailnet.relayMap ?? this.baseRelayMap();
  }

  /** The relay map without the settings' override: TRELLIS_RELAY_MAP, or the embedded relay's. */
  private baseRelayMap(): RelayMap {
    if (this.config.relayMap) return this.config.relayMap;
    if (!this.defaultRelayMap) {
      const stun = this.relay?.health().stun_port ?? this.config.stunPort;
      this.defaultRelayMap = defaultRelayMap(this.config.publicUrl, stun ?? null);
    }
    return this.defaultRelayMap;
  }

  /** Refuse a replay of a checked request, in this process and (on PostgreSQL) on any replica. */
  private async claim(checked: VerifiedRequest, pool: ReplayPool): Promise<void> {
    this.auth.remember(checked, pool);
    await this.replayGuard?.claim(checked);
  }

  /**
   * The node a signed request comes from; 401 unless it is registered and its
   * key unexpired. The node is looked up before the request's MAC is
   * remembered: a key someone made up costs no replay-cache entry.
   */
  private async authenticate(req: SignedRequest): Promise<Models.Node> {
    const checked = this.auth.checkSignature(req);
    const node = await this.db.prisma.node.findUnique({ where: { nodeKey: checked.nodeKey } });
    if (!node) throw new ControlError("unknown_node", 401, "this node key is not registered; register first");
    if (node.wireguardOnly) throw wireguardOnlyError();
    await this.claim(checked, "node");
    if (node.expiresAt !== null && node.expiresAt <= new Date()) {
      throw new ControlError(
        "node_key_expired",
        401,
        "this node key has expired; register again with a pre-auth key",
      );
    }
    return node;
  }

  /**
   * `POST /api/v1/register`: register (or re-register) the signing node with
   * a pre-auth key, rotate an existing node to the signing key
   * (`rotateFrom`), or — with no pre-auth key and a console `session`
   * riding along (a browser tab joining) — make the key that user's machine.
   */
  async register(req: SignedRequest, session: Actor | null = null): Promise<RegisterResponse> {
    const checked = this.auth.checkSignature(req);
    const nodeKey = checked.nodeKey;
    const body = parseJson(req.body);
    // A key not registered yet is remembered apart (node-auth.ts: it can
    // crowd out only other new registrations), and only when the request
    // carries something that could register it: a pre-auth key, a session or
    // a rotation proof.
    const known = await this.db.prisma.node.findUnique({ where: { nodeKey }, select: { id: true } });
    if (
      !known &&
      !session &&
      !(typeof body === "object" && body !== null && ("preAuthKey" in body || "rotateFrom" in body))
    ) {
      throw new ControlError(
        "invalid_preauth_key",
        401,
        "a pre-auth key is needed to register a new or expired node key",
      );
    }
    await this.claim(checked, known ? "node" : "new");
    // A pre-auth key decides on its own; only a session registration needs the right to add machines.
    const withKey = typeof body === "object" && body !== null && "preAuthKey" in body;
    let sessionUser: { userId: string } | undefined;
    if (session && !withKey) {
      requireScope(session, "machines:write");
      sessionUser = { userId: session.userId };
    }
    const settings = await this.settings();
    const { node, response, rotatedFrom, change } = await registerNode(this.db, nodeKey, body, {
      dnsDomain: settings.dns.domain,
      keyExpiryDays: settings.tailnet.keyExpiryDays,
      nodeApproval: settings.tailnet.nodeApproval,
      verifyRotation: (oldKey, signature, newKey) => this.auth.verifyRotation(oldKey, signature, newKey),
      sessionUser,
      persistentBrowserNodes: settings.tailnet.persistentBrowserNodes,
    });
    this.events.publish(change);
    // Advertised routes the policy's autoApprovers cover are approved at once.
    // The registration itself is committed: a failure here is logged, not
    // reported to the node, and the next policy save or re-registration retries.
    try {
      const approved = await applyAutoApprovals(this.db, (await this.policies.current()).policy, [node.id]);
      if (approved) this.events.publish(approved);
    } catch (err) {
      this.log.error({ err, node: node.id }, "auto-approval of advertised routes failed");
    }
    this.log.info(
      {
        node: node.id,
        name: node.name,
        created: response.created,
        authorized: node.authorized,
        ...(rotatedFrom ? { rotatedFrom } : {}),
      },
      rotatedFrom ? "node key rotated" : "node registered",
    );
    return response;
  }

  /** `POST /api/v1/endpoints`: the signing node reports where it can be reached. */
  async updateEndpoints(req: SignedRequest): Promise<{ changed: boolean }> {
    const node = await this.authenticate(req);
    const changed = await updateEndpoints(this.db, node.id, parseJson(req.body));
    if (changed) this.events.publish({ type: "nodes", ids: [node.id], attrsOnly: true });
    return { changed };
  }

  /**
   * `POST /api/v1/wireguard-peers/seen`: a gateway says when its plain
   * WireGuard peers last completed a handshake with it; their peers hear of
   * it as of any node's attributes.
   */
  async plainPeersSeen(req: SignedRequest): Promise<{ updated: number }> {
    const node = await this.authenticate(req);
    if (!node.authorized) {
      throw new ControlError("not_authorized", 403, "this node is not approved yet");
    }
    const ids = await plainPeersSeen(this.db, node.id, parseJson(req.body));
    if (ids.length > 0) this.events.publish({ type: "nodes", ids, attrsOnly: true });
    return { updated: ids.length };
  }

  /**
   * `POST /api/v1/logout`: the signing node's key stops working now; an
   * ephemeral node, or one that asks (`remove`: a browser leaving the
   * tailnet), is deleted instead. Its map streams end, on every replica.
   * Registering again needs a pre-auth key (or, for a browser, a session).
   */
  async logout(req: SignedRequest): Promise<{ loggedOut: true; deleted: boolean }> {
    const node = await this.authenticate(req);
    const body = parseOr400(
      LogoutRequest,
      req.body.length === 0 ? {} : parseJson(req.body),
      "invalid logout",
    );
    const deleted = node.ephemeral || body.remove === true;
    const now = new Date();
    const change = await this.db.prisma.$transaction(async (tx) => {
      if (deleted) {
        await retireNames(tx, [node]);
        await tx.node.deleteMany({ where: { id: node.id } });
      } else await tx.node.update({ where: { id: node.id }, data: { expiresAt: now } });
      await audit(tx, {
        actor: nodeRef(node.id),
        action: "node.logout",
        target: `node:${node.id}`,
        detail: { name: node.name, deleted },
      });
      return recordChange(this.db, tx, { type: "nodes", ids: [node.id] });
    });
    this.log.info({ node: node.id, name: node.name, deleted }, "node logged out");
    this.events.publish(change);
    return { loggedOut: true, deleted };
  }

  /**
   * `POST /api/v1/signal`: hand a sealed WebRTC signal to a peer's map stream
   * (see signal.ts). 202 when queued.
   */
  async signal(req: SignedRequest): Promise<{ status: "queued" }> {
    const node = await this.authenticate(req);
    return sendSignal(
      {
        db: this.db,
        netmaps: this.netmaps,
        presence: this.presence,
        bus: this.events,
        limiter: this.signalLimiter,
        replicated: this.bridge !== null,
      },
      node,
      parseJson(req.body),
    );
  }

  /** `POST /api/v1/connections`: the signing node reports its connections (connlog.ts). */
  async reportConnections(req: SignedRequest): Promise<{ accepted: number }> {
    const node = await this.authenticate(req);
    if (!node.authorized) {
      throw new ControlError("not_authorized", 403, "this node is not approved yet");
    }
    return ingestConnections(this.db, node, parseJson(req.body));
  }

  /**
   * `GET /api/v1/map`: the signing node's map as Server-Sent Events, written
   * to `sink` (the server's node:http response, see http/map.ts). Resolves,
   * once the full map is written, to the function that ends the stream.
   */
  async startMapStream(req: SignedRequest, sink: MapSink): Promise<() => void> {
    const node = await this.authenticate(req);
    return startMapStream(this.mapDeps(), this.streamNode(node), sink, this.opts.stream);
  }

  private mapDeps(): MapStreamDeps {
    return {
      netmaps: this.netmaps,
      bus: this.events,
      presence: this.presence,
      log: this.mapLog,
      // On PostgreSQL, a first map is never older than the newest change committed before the stream asked.
      ...(this.bridge ? { catchUp: this.catchUp } : {}),
    };
  }

  private readonly catchUp = () => this.bridge!.catchUp();

  /** On PostgreSQL, this replica's link to the others (health, stats; tests cut its connection). */
  get replication(): PgEventBridge | null {
    return this.bridge;
  }

  /** Only what a stream needs: it lives as long as the node is connected, and so does what it holds. */
  private streamNode(node: { id: string; ephemeral: boolean; nodeKey: string }) {
    return { id: node.id, ephemeral: node.ephemeral, nodeKey: node.nodeKey };
  }

  // --- What admin functions need (admin/context.ts) ---------------------------------

  /** The tailnet as the policy engine sees it now. */
  async topology() {
    return (await this.netmaps.snapshot()).topology;
  }

  /** The MagicDNS suffix in force (the DNS settings' domain; TRELLIS_DNS_DOMAIN until one is saved). */
  async dnsDomain(): Promise<string> {
    return (await this.settings()).dns.domain;
  }

  async close(): Promise<void> {
    await this.loginThrottle.close();
    this.writeWatch?.close();
    this.detachRelay?.();
    await this.presence.close();
    this.netmaps.close();
    this.replayGuard?.close();
    await this.bridge?.close();
    await this.db.close();
  }
}
