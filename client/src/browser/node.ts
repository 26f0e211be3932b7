// A browser tab as a node of the tailnet, on the control side: register the
// tab's key with the logged-in console session (no pre-auth key), then keep
// its map with the control client's watcher (reconnects with backoff,
// resyncs a lost message). Browser-safe; `fetch` is injectable for tests.
import type { FullMap, MapEnd } from "@trellis/proto/node";
import { ControlClient, ControlRequestError } from "../control/client";
import type { MapWatcher } from "../control/watch";
import { BrowserIdentity, type KeyStorage } from "./identity";

export type NodePhase =
  | { phase: "idle" }
  | { phase: "connecting"; attempt: number }
  | { phase: "connected"; map: FullMap }
  | { phase: "ended"; reason: MapEnd["reason"] | "left" }
  | { phase: "failed"; message: string };

export interface BrowserNodeOptions {
  /** Origin of the Trellis server, e.g. `location.origin`. */
  baseUrl: string;
  storage: KeyStorage;
  hostname: string;
  onChange: (state: NodePhase) => void;
  fetch?: typeof fetch;
  /** Reconnection attempts in a row before giving up (default 8: about two minutes of backoff). */
  maxAttempts?: number;
}

export class BrowserNode {
  private watcher: MapWatcher | null = null;
  private identity: BrowserIdentity | null = null;
  private client: ControlClient | null = null;
  private map: FullMap | null = null;

  constructor(private readonly opts: BrowserNodeOptions) {}

  /** True when this browser already holds a node key (it joined before). */
  static hasIdentity(storage: KeyStorage): boolean {
    return BrowserIdentity.load(storage) !== null;
  }

  private clientFor(identity: BrowserIdentity): ControlClient {
    if (this.identity !== identity || !this.client) {
      this.identity = identity;
      this.client = new ControlClient({
        baseUrl: this.opts.baseUrl,
        key: identity,
        fetch: this.opts.fetch,
        withSession: true,
      });
    }
    return this.client;
  }

  /** Register (creating the key if needed) and keep the map stream open until stop() or leave(). */
  async start(): Promise<void> {
    if (this.watcher) return;
    for (;;) {
      const client = this.clientFor(BrowserIdentity.loadOrCreate(this.opts.storage));
      const watcher = client.watchMap(
        {
          map: (map) => {
            this.map = map;
            this.opts.onChange({ phase: "connected", map });
          },
          state: (s) => {
            if (s.phase === "connecting") this.opts.onChange({ phase: "connecting", attempt: s.attempt });
          },
        },
        {
          prepare: async () => {
            await client.register({ hostname: this.opts.hostname, os: "browser" });
          },
          maxAttempts: this.opts.maxAttempts ?? 8,
        },
      );
      this.watcher = watcher;
      const last = await watcher.done;
      if (this.watcher !== watcher) return;
      this.watcher = null;
      if (last.phase === "stopped") return;
      if (last.phase === "ended") {
        this.opts.onChange({ phase: "ended", reason: last.reason });
        return;
      }
      if (
        last.phase === "failed" &&
        last.error instanceof ControlRequestError &&
        last.error.code === "node_key_retired"
      ) {
        // Another tab rotated this key away: start over as a new node.
        this.identity?.forget();
        this.identity = null;
        continue;
      }
      this.opts.onChange({
        phase: "failed",
        message: last.phase === "failed" ? last.error.message : last.phase,
      });
      return;
    }
  }

  /** Close the map stream; the node stays registered (it shows as offline). */
  stop(): void {
    this.watcher?.stop();
    this.watcher = null;
  }

  /** Log the node out (its key stops working) and forget the key in this browser. */
  async leave(): Promise<void> {
    this.stop();
    const identity = this.identity ?? BrowserIdentity.load(this.opts.storage);
    if (!identity) return;
    try {
      await this.clientFor(identity).logout();
    } finally {
      identity.forget();
      this.identity = null;
      this.client = null;
      this.map = null;
      this.opts.onChange({ phase: "ended", reason: "left" });
    }
  }
}
