// One connection of a node's map stream (`GET /api/v1/map`): Server-Sent
// Events carrying the full map, then deltas (`id:` = seq), WebRTC signals
// from peers, and a last `end` when the server closes it for good. See
// control/src/map-stream.ts for the server side.
import type { z } from "zod";
import { MapEnd, MapMessage, SignalMessage, type FullMap } from "@trellis/proto/node";
import { checkSeq, NetmapState } from "../netmap/state";
import { readSse, type SseEvent } from "./sse";

export type MapEvent =
  /** The map after a message (`message` is the full map or delta just applied). */
  | { type: "map"; map: FullMap; message: MapMessage }
  /** A sealed WebRTC signal from a peer. */
  | { type: "signal"; signal: SignalMessage }
  /** The server ended the stream: the node was deleted, its key expired or rotated, or approval withdrawn. */
  | { type: "end"; reason: MapEnd["reason"] };

export interface MapStreamOptions {
  signal?: AbortSignal;
  /**
   * The stream is dead when nothing (no event, no heartbeat) arrives for this
   * long; the server sends a heartbeat every 15 s. Default 45 s; 0 for never.
   */
  idleTimeoutMs?: number;
}

export class MapStreamError extends Error {
  override readonly name = "MapStreamError";
}

const DEFAULT_IDLE_MS = 45_000;

export class MapStream implements AsyncIterable<MapEvent> {
  private lastSeq: number | null = null;
  private used = false;

  /** `abort` aborts the request the stream's response belongs to (ControlClient.openMap links it to `opts.signal`). */
  constructor(
    private readonly res: Response,
    private readonly abort: AbortController,
    private readonly opts: MapStreamOptions,
  ) {}

  /** Stop reading and drop the connection. */
  close(): void {
    this.abort.abort();
  }

  /**
   * The stream's events as sent, without parsing their JSON: full and delta
   * events are checked to follow each other by their `id:` (their seq), so a
   * lost message throws a MapSequenceError here too. For consumers that only
   * count and time events (the control benchmark).
   */
  async *raw(): AsyncGenerator<SseEvent> {
    if (this.used) throw new MapStreamError("a map stream can be read once");
    this.used = true;
    if (!this.res.body) throw new MapStreamError("the map stream has no body");
    const idleMs = this.opts.idleTimeoutMs ?? DEFAULT_IDLE_MS;
    let timer: ReturnType<typeof setTimeout> | null = null;
    let idle = false;
    const arm = () => {
      if (idleMs <= 0) return;
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        idle = true;
        this.close();
      }, idleMs);
    };
    arm();
    try {
      for await (const ev of readSse(this.res.body, { onComment: arm, signal: this.abort.signal })) {
        arm();
        if (ev.event === "full" || ev.event === "delta") {
          const seq = ev.id !== undefined && /^\d{1,15}$/.test(ev.id) ? Number(ev.id) : NaN;
          if (!Number.isSafeInteger(seq)) throw new MapStreamError(`map event without a valid id: ${ev.id}`);
          if (ev.event === "delta") checkSeq(this.lastSeq, seq);
          this.lastSeq = seq;
        }
        yield ev;
      }
    } catch (err) {
      if (idle) throw new MapStreamError(`the map stream was silent for ${idleMs / 1000} s`);
      if (this.abort.signal.aborted) return;
      throw err;
    } finally {
      if (timer) clearTimeout(timer);
    }
    if (idle) throw new MapStreamError(`the map stream was silent for ${idleMs / 1000} s`);
  }

  /** The stream's events, parsed and validated, with the map kept up to date. Ends after `end`. */
  async *[Symbol.asyncIterator](): AsyncGenerator<MapEvent> {
    const state = new NetmapState();
    for await (const ev of this.raw()) {
      switch (ev.event) {
        case "full":
        case "delta": {
          const message = parseEvent(MapMessage, ev);
          if (message.type !== ev.event || String(message.seq) !== ev.id) {
            throw new MapStreamError(
              `map event ${ev.event} ${ev.id} carries a ${message.type} with seq ${message.seq}`,
            );
          }
          yield { type: "map", map: state.apply(message), message };
          break;
        }
        case "signal":
          yield { type: "signal", signal: parseEvent(SignalMessage, ev) };
          break;
        case "end":
          yield { type: "end", reason: parseEvent(MapEnd, ev).reason };
          this.close();
          return;
        default:
          // Events a newer server adds are not for this client.
          break;
      }
    }
  }
}

function parseEvent<S extends z.ZodType>(schema: S, ev: SseEvent): z.output<S> {
  let value: unknown;
  try {
    value = JSON.parse(ev.data);
  } catch {
    throw new MapStreamError(`map event ${ev.event} is not JSON`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new MapStreamError(
      `map event ${ev.event} is invalid: ${i ? `${i.path.join(".")}: ${i.message}` : "?"}`,
    );
  }
  return parsed.data;
}
