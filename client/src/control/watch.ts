// Keeping a node's map over time: the map stream is opened again whenever
// it drops, goes silent or loses a message, with exponential backoff and
// jitter between failed attempts, until the caller stops or the server ends
// it (the node was deleted, its key expired or rotated, its approval
// withdrawn). A lost message (seq gap) is resynced at once: a new
// connection begins with a full map.
import type { FullMap, MapEnd, MapMessage, SignalMessage } from "@trellis/proto/node";
import type { ControlClient } from "./client";
import type { MapStream } from "./map-stream";
import { ControlRequestError } from "./client";
import { MapSequenceError } from "../netmap/state";

export type WatchState =
  | { phase: "connecting"; attempt: number }
  | { phase: "connected" }
  /** A message was lost; a new connection is being opened for a full map. */
  | { phase: "resyncing"; error: MapSequenceError }
  /** The connection dropped; the next attempt comes after `retryInMs`. */
  | { phase: "retrying"; attempt: number; retryInMs: number; error: Error }
  | { phase: "ended"; reason: MapEnd["reason"] }
  /** Stopped by the caller. */
  | { phase: "stopped" }
  /** Given up: a refusal that retrying cannot fix, or too many failures in a row. */
  | { phase: "failed"; error: Error };

export interface MapWatchHandlers {
  /** Each new map; `message` is what changed it. */
  map?(map: FullMap, message: MapMessage): void;
  signal?(signal: SignalMessage): void;
  state?(state: WatchState): void;
}

export interface MapWatchOptions {
  /**
   * Runs before each connection attempt (a browser tab registers its key
   * here, so a node deleted meanwhile comes back). A failure counts as a
   * failed attempt.
   */
  prepare?: () => Promise<void>;
  /** Failed attempts in a row before giving up; default Infinity (a gateway never gives up). */
  maxAttempts?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** See MapStreamOptions.idleTimeoutMs. */
  idleTimeoutMs?: number;
  /** Source of jitter in [0, 1) (tests make it fixed). */
  random?: () => number;
}

export class MapWatcher {
  private readonly abort = new AbortController();
  /** Settles when the watcher stops for good; resolves to its last state. */
  readonly done: Promise<WatchState>;

  constructor(
    private readonly client: ControlClient,
    private readonly handlers: MapWatchHandlers,
    private readonly opts: MapWatchOptions,
  ) {
    this.done = this.run();
  }

  /** Stop watching and close the stream. */
  stop(): void {
    this.abort.abort();
  }

  private emit(state: WatchState): WatchState {
    this.handlers.state?.(state);
    return state;
  }

  private async run(): Promise<WatchState> {
    const maxAttempts = this.opts.maxAttempts ?? Infinity;
    const minMs = this.opts.minBackoffMs ?? 500;
    const maxMs = this.opts.maxBackoffMs ?? 30_000;
    const random = this.opts.random ?? Math.random;
    const signal = this.abort.signal;
    let attempt = 0;
    /** Resyncs since a delta last applied cleanly: a server that keeps losing messages gets backoff. */
    let resyncs = 0;
    while (!signal.aborted) {
      attempt++;
      this.emit({ phase: "connecting", attempt });
      let failure: Error;
      let stream: MapStream | null = null;
      try {
        await this.opts.prepare?.();
        if (signal.aborted) break;
        stream = await this.client.openMap({ signal, idleTimeoutMs: this.opts.idleTimeoutMs });
        for await (const ev of stream) {
          if (ev.type === "map") {
            if (ev.message.type === "full") {
              // The connection works: the next failure starts the backoff anew.
              attempt = 0;
              this.emit({ phase: "connected" });
            } else resyncs = 0;
            this.handlers.map?.(ev.map, ev.message);
          } else if (ev.type === "signal") {
            this.handlers.signal?.(ev.signal);
          } else {
            return this.emit({ phase: "ended", reason: ev.reason });
          }
        }
        if (signal.aborted) break;
        failure = new Error("the map stream closed");
      } catch (err) {
        if (signal.aborted) break;
        failure = err instanceof Error ? err : new Error(String(err));
        if (err instanceof MapSequenceError && ++resyncs <= 2) {
          this.emit({ phase: "resyncing", error: err });
          continue;
        }
        if (failure instanceof ControlRequestError && failure.refused) {
          return this.emit({ phase: "failed", error: failure });
        }
      } finally {
        // A stream given up on (lost message, silence, stop) holds no connection.
        stream?.close();
      }
      if (attempt >= maxAttempts) return this.emit({ phase: "failed", error: failure });
      const base = Math.min(maxMs, minMs * 2 ** Math.min(Math.max(attempt - 1, 0), 16));
      const delay = Math.round(base * (0.75 + random() * 0.5));
      this.emit({ phase: "retrying", attempt, retryInMs: delay, error: failure });
      await sleep(delay, signal);
    }
    return this.emit({ phase: "stopped" });
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
