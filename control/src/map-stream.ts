// A node's map stream as Server-Sent Events: `event: full` first, then
// `event: delta` (each `id:` is the message's seq), and a comment line every
// `heartbeatMs` so proxies and the node can tell a quiet stream from a dead
// one. A client that stops reading is cut off once `maxQueued` messages wait
// for it; it reconnects and starts again from a full map.
//
// Two more events, without `id:` (they are not part of the map's sequence):
//   event: signal   data: {"type":"signal","from":"nodekey:…","sealed":"…"}
//     a WebRTC signal from a peer (signal.ts), forwarded verbatim; dropped
//     rather than queued once the reader lags (signals are retried by senders)
//   event: end      data: {"type":"end","reason":"key_expired"}
//     the last event when the server ends the stream: the node was deleted,
//     its key expired or was logged out, rotated, or its approval withdrawn.
import type { Logger } from "@trellis/log";
import type { MapEnd, MapMessage, SignalMessage } from "@trellis/proto";
import { attrsOnlyIds, type EventBus } from "./events";
import { MapSession } from "./map-session";
import { jsonOf } from "./netmap";
import type { NetmapService } from "./netmap-service";
import type { Presence } from "./presence";

export const HEARTBEAT_MS = 15_000;

export interface MapStreamDeps {
  netmaps: NetmapService;
  bus: EventBus;
  presence: Presence;
  log: Logger;
}

export interface MapStreamOptions {
  heartbeatMs?: number;
  maxQueued?: number;
  coalesceMs?: number;
  /** Aborted when the client goes away (the request's signal). */
  signal?: AbortSignal;
}

/**
 * JSON of a map message, assembled from the cached JSON of its parts
 * (jsonOf): peers are shared by every stream of a snapshot, so a full map of
 * N streams stringifies each peer once, not N times, and a part compared
 * for a delta is not stringified again to be sent. Same output as
 * JSON.stringify, key order included.
 */
export function mapJson(msg: MapMessage): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(msg)) {
    if (v === undefined) continue;
    let value: string;
    if (Array.isArray(v) && (k === "peers" || k === "peersChanged")) {
      value = `[${(v as object[]).map(jsonOf).join(",")}]`;
    } else if (typeof v === "object" && v !== null) {
      value = jsonOf(v);
    } else {
      value = JSON.stringify(v);
    }
    parts.push(`${JSON.stringify(k)}:${value}`);
  }
  return `{${parts.join(",")}}`;
}

export function sseEvent(msg: MapMessage): string {
  return `id: ${msg.seq}\nevent: ${msg.type}\ndata: ${mapJson(msg)}\n\n`;
}

/** A signal for the node, as sent (keys in this order). */
export function signalEvent(from: string, sealed: string): string {
  const msg: SignalMessage = { type: "signal", from, sealed };
  return `event: signal\ndata: ${JSON.stringify(msg)}\n\n`;
}

export function endEvent(reason: MapEnd["reason"]): string {
  const msg: MapEnd = { type: "end", reason };
  return `event: end\ndata: ${JSON.stringify(msg)}\n\n`;
}

/**
 * Open the stream. Resolves once the full map is ready, so a node that takes
 * no part in the tailnet gets an HTTP error instead of an empty stream.
 */
export async function openMapStream(
  deps: MapStreamDeps,
  node: { id: string; ephemeral: boolean; nodeKey: string },
  opts: MapStreamOptions = {},
): Promise<ReadableStream<Uint8Array>> {
  const maxQueued = opts.maxQueued ?? 256;
  let controller: ReadableStreamDefaultController<Uint8Array> | null = null;
  let finished = false;
  let heartbeat: ReturnType<typeof setInterval> | null = null;
  const log = deps.log.child({ node: node.id });

  const write = (text: string) => {
    if (finished || !controller) return;
    if ((controller.desiredSize ?? 0) < -maxQueued) {
      log.warn({ queued: -(controller.desiredSize ?? 0) }, "map stream reader too slow; closing");
      finish();
      return;
    }
    // Buffer.from: faster than TextEncoder for these mostly-ASCII texts, and a Uint8Array all the same.
    controller.enqueue(Buffer.from(text));
  };
  const session = new MapSession(node.id, deps.netmaps, (m) => write(sseEvent(m)), log, {
    coalesceMs: opts.coalesceMs,
    nodeKey: node.nodeKey,
    onGone: (reason) => {
      log.info({ reason }, "map stream ended by the server");
      write(endEvent(reason));
      finish();
    },
  });
  const unsubscribe = deps.bus.subscribe((e) => {
    if (e.type !== "signal") return session.notify(attrsOnlyIds(e));
    if (e.to !== node.nodeKey || finished || !controller) return;
    // A lagging reader loses signals (the sender retries) instead of the stream.
    if (-(controller.desiredSize ?? 0) > maxQueued / 2) {
      log.debug({ from: e.from }, "signal dropped: reader lagging");
      return;
    }
    write(signalEvent(e.from, e.sealed));
  });

  function finish() {
    if (finished) return;
    finished = true;
    if (heartbeat) clearInterval(heartbeat);
    unsubscribe();
    session.close();
    opts.signal?.removeEventListener("abort", finish);
    try {
      controller?.close();
    } catch {
      // Already closed or cancelled by the reader.
    }
    void deps.presence.disconnect(node.id, node.ephemeral);
    log.debug("map stream closed");
  }

  // Online before the first map, so the map already says so.
  await deps.presence.connect(node.id);
  let first: MapMessage;
  try {
    first = await session.first();
  } catch (err) {
    finish();
    throw err;
  }
  if (opts.signal?.aborted) finish();
  opts.signal?.addEventListener("abort", finish);
  log.debug("map stream opened");

  return new ReadableStream<Uint8Array>(
    {
      start(c) {
        controller = c;
        if (finished) {
          c.close();
          return;
        }
        write(sseEvent(first));
        heartbeat = setInterval(() => write(": heartbeat\n\n"), opts.heartbeatMs ?? HEARTBEAT_MS);
        heartbeat.unref?.();
      },
      cancel() {
        finish();
      },
    },
    { highWaterMark: 1 },
  );
}
