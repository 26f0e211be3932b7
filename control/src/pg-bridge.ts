import { randomUUID } from "node:crypto";
import pg from "pg";
import type { Logger } from "@trellis/log";
import { controlEventSchema, type ControlEvent, type EventBus } from "./events";

/** The PostgreSQL channel that carries tailnet changes between server processes. */
export const CHANNEL = "trellis_events";
/**
 * NOTIFY payloads must stay under 8,000 bytes; node events are split to fit,
 * and signals are bounded by SIGNAL_MAX_SEALED (6,000 base64 characters plus
 * two keys and the envelope, about 6,250 bytes).
 */
const IDS_PER_NOTIFY = 100;

const Wire = controlEventSchema({ maxIds: IDS_PER_NOTIFY, originRequired: true });

/**
 * Joins this process's event bus to every other server process on the same
 * PostgreSQL database: local events go out as NOTIFY, others' come back in
 * through LISTEN and are published locally (never re-sent: they carry their
 * origin). Events hold only ids, so a lost notification costs a stale map
 * until the next change, never a wrong one; after a reconnect every stream is
 * told to recompute, covering anything missed while disconnected.
 */
export class PgEventBridge {
  readonly origin = randomUUID();
  private client: pg.Client | null = null;
  private closed = false;
  private retryMs = 200;
  private readonly unsubscribe: () => void;
  /** Notifications sent and received (for tests and metrics). */
  readonly stats = { sent: 0, received: 0, invalid: 0, reconnects: 0 };

  private constructor(
    private readonly url: string,
    private readonly bus: EventBus,
    private readonly log: Logger,
  ) {
    this.unsubscribe = bus.subscribe((e) => {
      if (!e.origin) this.forward(e);
    });
  }

  /** Connect and LISTEN; resolves once listening. */
  static async start(url: string, bus: EventBus, log: Logger): Promise<PgEventBridge> {
    const bridge = new PgEventBridge(url, bus, log);
    await bridge.connect();
    return bridge;
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url });
    client.on("notification", (msg) => this.onNotification(msg.payload));
    client.on("error", (err) => {
      this.log.warn({ err }, "event bridge connection failed; reconnecting");
      this.reconnectSoon(client);
    });
    client.on("end", () => this.reconnectSoon(client));
    await client.connect();
    await client.query(`LISTEN ${CHANNEL}`);
    this.client = client;
    this.retryMs = 200;
  }

  private reconnectSoon(failed: pg.Client): void {
    if (this.closed || this.client !== failed) return;
    this.client = null;
    failed.end().catch(() => undefined);
    const delay = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, 10_000);
    setTimeout(() => {
      if (this.closed) return;
      this.connect().then(
        () => {
          this.stats.reconnects++;
          // Whatever others published while we were away is unknown: recompute everything.
          // (A settings event: the runtime then also re-reads the settings.)
          this.bus.publish({ type: "settings", origin: "reconnect" });
        },
        (err: unknown) => {
          this.log.warn({ err }, "event bridge reconnect failed");
          const dead = new pg.Client();
          this.client = dead;
          this.reconnectSoon(dead);
        },
      );
    }, delay).unref();
  }

  private forward(e: ControlEvent): void {
    const payloads: string[] = [];
    if (e.type === "nodes") {
      for (let i = 0; i < e.ids.length; i += IDS_PER_NOTIFY) {
        payloads.push(
          JSON.stringify({
            type: "nodes",
            ids: e.ids.slice(i, i + IDS_PER_NOTIFY),
            ...(e.attrsOnly ? { attrsOnly: true } : {}),
            origin: this.origin,
          }),
        );
      }
    } else if (e.type === "signal") {
      const { to, from, sealed } = e;
      payloads.push(JSON.stringify({ type: "signal", to, from, sealed, origin: this.origin }));
    } else {
      payloads.push(JSON.stringify({ type: e.type, origin: this.origin }));
    }
    const client = this.client;
    if (!client) {
      this.log.warn({ event: e.type }, "event bridge down: change not sent to other processes");
      return;
    }
    for (const p of payloads) {
      client.query("SELECT pg_notify($1, $2)", [CHANNEL, p]).then(
        () => this.stats.sent++,
        (err: unknown) => this.log.warn({ err }, "NOTIFY failed"),
      );
    }
  }

  private onNotification(payload: string | undefined): void {
    let event: ControlEvent;
    try {
      event = Wire.parse(JSON.parse(payload ?? ""));
    } catch {
      this.stats.invalid++;
      return;
    }
    if (event.origin === this.origin) return;
    this.stats.received++;
    this.bus.publish(event);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe();
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => undefined);
  }
}
