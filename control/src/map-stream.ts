// A node's map stream as Server-Sent Events: `event: full` first, then
// `event: delta` (each `id:` is the message's seq), and a comment line every
// `heartbeatMs` so proxies and the node can tell a quiet stream from a dead
// one. A client that stops reading is cut off once `maxQueuedBytes` wait for
// it; it reconnects and starts again from a full map.
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
import { SSE_HEARTBEAT, sseText } from "./http/sse";
import { MapSession } from "./map-session";
import { jsonOf } from "./netmap";
import type { FilterRule } from "@trellis/proto";
import type { NetmapService } from "./netmap-service";
import type { Presence } from "./presence";

export const HEARTBEAT_MS = 15_000;
const HEARTBEAT = Buffer.from(SSE_HEARTBEAT);

export interface MapStreamDeps {
  netmaps: NetmapService;
  bus: EventBus;
  presence: Presence;
  log: Logger;
  /**
   * With replicas: publish every change committed so far that this process
   * has not heard of (pg-bridge.ts), so the first map is not older than
   * what the node may have seen through another replica.
   */
  catchUp?: () => Promise<void>;
}

/**
 * Bytes that may wait for a client before its stream is cut off: several
 * full maps of a 10,000-node tailnet where everyone sees everyone (~2.5 MB
 * each), so only a client that stopped reading reaches it.
 */
export const MAX_QUEUED_BYTES = 8 * 1024 * 1024;

export interface MapStreamOptions {
  heartbeatMs?: number;
  /** See MAX_QUEUED_BYTES. */
  maxQueuedBytes?: number;
  coalesceMs?: number;
}

/**
 * JSON of a map message, assembled from the cached JSON of its parts
 * (jsonOf): peers are shared by every stream of a snapshot, so a full map of
 * N streams stringifies each peer once, not N times, and a part compared
 * for a delta is not stringified again to be sent. Same output as
 * JSON.stringify, key order included.
 */
export function mapJson(msg: MapMessage): string {
  return jsonParts(msg)
    .map((p) => (typeof p === "string" ? p : p.toString("utf8")))
    .join("");
}

/**
 * The message's JSON as parts: texts, and the cached UTF-8 bytes of source
 * lists. A policy change sends every node its new filter, ~2 kB mostly made
 * of source lists that the compiler shares among the nodes a rule reaches;
 * copying those lists' bytes into each event is several times cheaper than
 * assembling a text per node and encoding it. Nothing per node is cached:
 * cached bytes are memory outside V8's heap, and churning it forces full
 * garbage collections.
 */
function jsonParts(msg: MapMessage): (string | Buffer)[] {
  const parts: (string | Buffer)[] = [];
  let text = "{";
  let first = true;
  const m = msg as unknown as Record<string, unknown>;
  for (const k in m) {
    const v = m[k];
    if (v === undefined) continue;
    text += (first ? "" : ",") + keyJson(k);
    first = false;
    if (k === "packetFilter") {
      text = filterParts(v as FilterRule[], parts, text);
    } else if (Array.isArray(v) && (k === "peers" || k === "peersChanged")) {
      text += `[${(v as object[]).map(jsonOf).join(",")}]`;
    } else if (typeof v === "object" && v !== null) {
      text += jsonOf(v);
    } else {
      text += JSON.stringify(v);
    }
  }
  parts.push(text + "}");
  return parts;
}

/**
 * Append a packet filter's JSON (the same text as JSON.stringify) to `parts`
 * after `text`; returns the text that follows the last part pushed.
 */
function filterParts(rules: readonly FilterRule[], parts: (string | Buffer)[], text: string): string {
  text += "[";
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]!;
    text += i === 0 ? "{" : ",{";
    let first = true;
    for (const k in r) {
      const v = r[k as keyof FilterRule];
      if (v === undefined) continue;
      text += (first ? "" : ",") + keyJson(k);
      first = false;
      if (k === "SrcIPs") {
        parts.push(text, srcBytes(v as string[]));
        text = "";
      } else text += JSON.stringify(v);
    }
    text += "}";
  }
  return text + "]";
}

const keyJsons = new Map<string, string>();
/** `"key":`, made once per key. */
function keyJson(k: string): string {
  let j = keyJsons.get(k);
  if (j === undefined) {
    j = JSON.stringify(k) + ":";
    // Message keys are the protocol's few field names; anything else is not cached.
    if (keyJsons.size < 64) keyJsons.set(k, j);
  }
  return j;
}

/** Texts and bytes laid end to end in one buffer. */
function concat(parts: readonly (string | Buffer)[]): Buffer {
  let size = 0;
  for (const p of parts) size += typeof p === "string" ? Buffer.byteLength(p) : p.length;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const p of parts) at += typeof p === "string" ? out.write(p, at) : p.copy(out, at);
  return out;
}

const srcCache = new WeakMap<readonly string[], Buffer>();

/** UTF-8 JSON of a source list, once per list (the compiler shares lists among nodes). */
function srcBytes(list: readonly string[]): Buffer {
  let b = srcCache.get(list);
  if (b === undefined) {
    b = Buffer.from(JSON.stringify(list));
    srcCache.set(list, b);
  }
  return b;
}

/** UTF-8 JSON of a packet filter, the same text as JSON.stringify. */
export function filterBytes(rules: readonly FilterRule[]): Buffer {
  const parts: (string | Buffer)[] = [];
  parts.push(filterParts(rules, parts, ""));
  return concat(parts);
}

/** A map message as its Server-Sent Event, in UTF-8. */
export function sseEvent(msg: MapMessage): Buffer {
  const parts = jsonParts(msg);
  parts[0] = `id: ${msg.seq}\nevent: ${msg.type}\ndata: ` + (parts[0] as string);
  parts[parts.length - 1] = (parts[parts.length - 1] as string) + "\n\n";
  return concat(parts);
}

/** A signal for the node, as sent (keys in this order). */
export function signalEvent(from: string, sealed: string): string {
  const msg: SignalMessage = { type: "signal", from, sealed };
  return sseText("signal", JSON.stringify(msg));
}

export function endEvent(reason: MapEnd["reason"]): string {
  const msg: MapEnd = { type: "end", reason };
  return sseText("end", JSON.stringify(msg));
}

/**
 * Where a stream's bytes go: the node:http response (http/map.ts). Events
 * are pushed, not pulled; a client that does not take them is found by
 * `queued()` and cut off.
 */
export interface MapSink {
  /** Send bytes (in order) to the client. */
  write(bytes: Uint8Array): void;
  /** Bytes written that the client has not taken yet. */
  queued(): number;
  /** True once the client has gone away. */
  gone(): boolean;
  /**
   * No more bytes: close the response. `abort`: the client stopped reading,
   * so drop what waits for it instead of finishing gracefully.
   */
  end(abort?: boolean): void;
}

/**
 * Start a node's map stream on `sink`: its full map is written before this
 * resolves, so a node that takes no part in the tailnet gets an error (and
 * its caller an HTTP error status) instead of an empty stream. Resolves to
 * the function that ends the stream, which the caller calls when the client
 * goes away; the stream also ends itself (see `end` events).
 */
export async function startMapStream(
  deps: MapStreamDeps,
  node: { id: string; ephemeral: boolean; nodeKey: string },
  sink: MapSink,
  opts: MapStreamOptions = {},
): Promise<() => void> {
  // The client left while it was authenticated: nothing to start (and no presence to undo).
  if (sink.gone()) return () => undefined;
  // Before subscribing: what it publishes is in the first map, not a change after it.
  if (deps.catchUp) {
    await deps.catchUp();
    if (sink.gone()) return () => undefined;
  }
  const maxQueued = opts.maxQueuedBytes ?? MAX_QUEUED_BYTES;
  let started = false;
  let finished = false;
  let heartbeat: ReturnType<typeof setInterval> | null = null;
  // Not a child logger per stream: 10,000 streams would hold 10,000 of them; calls name the node.
  const log = deps.log;

  const write = (bytes: Uint8Array) => {
    if (finished || !started) return;
    const queued = sink.queued();
    if (queued > maxQueued) {
      log.warn({ node: node.id, queued }, "map stream reader too slow; closing");
      finish(true);
      return;
    }
    sink.write(bytes);
  };
  const session = new MapSession(node.id, deps.netmaps, (m) => write(sseEvent(m)), log, {
    coalesceMs: opts.coalesceMs,
    nodeKey: node.nodeKey,
    onGone: (reason) => {
      log.info({ node: node.id, reason }, "map stream ended by the server");
      write(Buffer.from(endEvent(reason)));
      finish();
    },
  });
  const unsubscribe = deps.bus.subscribe((e) => {
    if (e.type !== "signal") return session.notify(attrsOnlyIds(e));
    if (e.to !== node.nodeKey || finished || !started) return;
    // A lagging reader loses signals (the sender retries) instead of the stream.
    if (sink.queued() > maxQueued / 2) {
      log.debug({ node: node.id, from: e.from }, "signal dropped: reader lagging");
      return;
    }
    write(Buffer.from(signalEvent(e.from, e.sealed)));
  });

  function finish(abort = false) {
    if (finished) return;
    finished = true;
    if (heartbeat) clearInterval(heartbeat);
    unsubscribe();
    session.close();
    sink.end(abort);
    void deps.presence.disconnect(node.id, node.ephemeral);
    log.debug({ node: node.id }, "map stream closed");
  }

  // Online before the first map, so the map already says so.
  await deps.presence.connect(node.id);
  let first: Uint8Array;
  try {
    first = sseEvent(await session.first());
  } catch (err) {
    finish();
    throw err;
  }
  // The client may have left while its map was made.
  if (sink.gone()) {
    finish();
    return finish;
  }
  started = true;
  write(first);
  heartbeat = setInterval(() => write(HEARTBEAT), opts.heartbeatMs ?? HEARTBEAT_MS);
  heartbeat.unref?.();
  log.debug({ node: node.id }, "map stream opened");
  return finish;
}
