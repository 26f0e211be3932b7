// A browser tab as a node of the tailnet, on the control side: register the
// tab's key with the logged-in console session (no pre-auth key), then hold
// the map stream open, applying deltas and reconnecting with backoff when the
// connection drops. Browser-safe; `fetch` is injectable for tests and Node.
import {
  ApiError,
  ControlKeyResponse,
  MapEnd,
  MapMessage,
  RegisterResponse,
  applyDelta,
  type FullMap,
} from "@trellis/proto";
import { BrowserIdentity, type KeyStorage } from "./browser-identity";
import type { ControlSigner } from "./control-auth";
import { readSse } from "./sse";

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

/** An HTTP failure with the server's error body. */
export class ControlRequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ControlRequestError";
  }
}

const MAX_BACKOFF_MS = 30_000;

export class BrowserNode {
  private readonly fetch: typeof fetch;
  private readonly maxAttempts: number;
  private abort: AbortController | null = null;
  private running = false;
  private signer: ControlSigner | null = null;
  private identity: BrowserIdentity | null = null;

  constructor(private readonly opts: BrowserNodeOptions) {
    this.fetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.maxAttempts = opts.maxAttempts ?? 8;
  }

  /** True when this browser already holds a node key (it joined before). */
  static hasIdentity(storage: KeyStorage): boolean {
    return BrowserIdentity.load(storage) !== null;
  }

  /** Register (creating the key if needed) and keep the map stream open until stop() or leave(). */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    let attempt = 0;
    while (this.running) {
      attempt++;
      this.opts.onChange({ phase: "connecting", attempt });
      try {
        await this.register();
        const ended = await this.stream(() => (attempt = 0));
        if (ended) {
          this.running = false;
          this.opts.onChange({ phase: "ended", reason: ended });
          return;
        }
      } catch (err) {
        if (!this.running) return;
        if (err instanceof ControlRequestError && err.code === "node_key_retired") {
          // Another tab rotated this key away: start over as a new node.
          this.identity?.forget();
          this.identity = null;
          this.signer = null;
          continue;
        }
        const fatal = err instanceof ControlRequestError && err.status >= 400 && err.status < 500;
        if (fatal || attempt >= this.maxAttempts) {
          this.running = false;
          this.opts.onChange({ phase: "failed", message: err instanceof Error ? err.message : String(err) });
          return;
        }
      }
      if (!this.running) return;
      const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(attempt, 6));
      await new Promise((r) => setTimeout(r, delay * (0.75 + Math.random() * 0.5)));
    }
  }

  /** Close the map stream; the node stays registered (it shows as offline). */
  stop(): void {
    this.running = false;
    this.abort?.abort();
  }

  /** Log the node out (its key stops working) and forget the key in this browser. */
  async leave(): Promise<void> {
    this.stop();
    const identity = this.identity ?? BrowserIdentity.load(this.opts.storage);
    if (!identity) return;
    try {
      const signer = this.signer ?? identity.signer(await this.controlKey());
      await this.call(signer, "POST", "/api/v1/logout", "");
    } finally {
      identity.forget();
      this.identity = null;
      this.signer = null;
      this.opts.onChange({ phase: "ended", reason: "left" });
    }
  }

  private async controlKey(): Promise<string> {
    const res = await this.fetch(new URL("/api/v1/key", this.opts.baseUrl));
    if (!res.ok) throw await requestError(res);
    return ControlKeyResponse.parse(await res.json()).publicKey;
  }

  private async register(): Promise<void> {
    this.identity ??= BrowserIdentity.loadOrCreate(this.opts.storage);
    this.signer ??= this.identity.signer(await this.controlKey());
    const body = JSON.stringify({ hostname: this.opts.hostname, os: "browser" });
    const res = await this.call(this.signer, "POST", "/api/v1/register", body);
    RegisterResponse.parse(await res.json());
  }

  private async call(signer: ControlSigner, method: string, path: string, body: string): Promise<Response> {
    const res = await this.fetch(new URL(path, this.opts.baseUrl), {
      method,
      headers: { authorization: signer.sign(method, path, body), "content-type": "application/json" },
      body,
      credentials: "same-origin",
    });
    if (!res.ok) throw await requestError(res);
    return res;
  }

  /**
   * Read the map stream until it ends. Returns the server's end reason, or
   * null when the connection dropped (reconnect). `onFull` runs once the
   * first map arrived (the connection works: reset the backoff).
   */
  private async stream(onFull: () => void): Promise<MapEnd["reason"] | null> {
    const signer = this.signer!;
    this.abort = new AbortController();
    const res = await this.fetch(new URL("/api/v1/map", this.opts.baseUrl), {
      headers: { authorization: signer.sign("GET", "/api/v1/map") },
      signal: this.abort.signal,
    });
    if (!res.ok || !res.body) throw await requestError(res);
    let map: FullMap | null = null;
    try {
      for await (const ev of readSse(res.body)) {
        if (ev.event === "end") return MapEnd.parse(JSON.parse(ev.data)).reason;
        // Signals are for the data plane (WebRTC), which this page does not run.
        if (ev.event !== "full" && ev.event !== "delta") continue;
        const msg = MapMessage.parse(JSON.parse(ev.data));
        if (msg.type === "full") {
          map = msg;
          onFull();
        } else if (map) map = applyDelta(map, msg);
        else continue;
        this.opts.onChange({ phase: "connected", map });
      }
    } catch (err) {
      if (!this.running) return null;
      throw err;
    }
    return null;
  }
}

async function requestError(res: Response): Promise<ControlRequestError> {
  const text = await res.text().catch(() => "");
  let body: ApiError | null = null;
  try {
    body = ApiError.parse(JSON.parse(text));
  } catch {
    body = null;
  }
  return new ControlRequestError(
    res.status,
    body?.error ?? `http_${res.status}`,
    body?.message ?? `the server answered ${res.status}`,
  );
}
