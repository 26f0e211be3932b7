import { migrate, openDatabase, type Database } from "@trellis/db";
import type { Logger } from "@trellis/log";
import type { HealthResponse } from "@trellis/proto";
import type { ServerConfig } from "./config";
import { isKnownNodeKey } from "./nodes";
import { completeSetup, isSetupComplete, issueSetupToken } from "./setup";

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

  private constructor(
    readonly config: ServerConfig,
    readonly db: Database,
    readonly log: Logger,
  ) {}

  /** Apply pending migrations, then connect. */
  static async open(config: ServerConfig, log: Logger): Promise<ControlRuntime> {
    const { applied } = await migrate(config.databaseUrl);
    if (applied.length) log.info({ applied }, "applied database migrations");
    const db = await openDatabase(config.databaseUrl);
    return new ControlRuntime(config, db, log);
  }

  attachRelay(relay: RelayStatusSource): void {
    this.relay = relay;
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

  async close(): Promise<void> {
    await this.db.close();
  }
}
