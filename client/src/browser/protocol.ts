// Messages between Trellis pages and the browser node's SharedWorker (one
// engine per browser profile; every tab is the same node). Pages ask, the
// worker answers and broadcasts its state; the page that hosts WebRTC (a
// worker cannot) carries data channels for the worker. Data-channel messages
// cross as transferred ArrayBuffers, in batches. The private key never
// crosses: it is made, kept and used in the worker.
import type { FullMap } from "@trellis/proto/node";
import type { EngineStatus, PingResult } from "../engine/engine";
import { z } from "zod";
import { RtcSignal } from "../paths/signalling";
import type { DirectLinkOptions } from "../paths/webrtc";

/**
 * Why the node ended: the server's reasons (see the map stream's `end`), `left` (Leave), or
 * `taken_over`: a worker of another version of the app, in another tab of this browser, runs
 * the node now.
 */
export type EndReason = "deleted" | "key_expired" | "key_rotated" | "unauthorized" | "left" | "taken_over";

/** The node runs in another version's worker now (this one's tabs offer a reload). */
export function isTakenOver(s: NodeState): boolean {
  return s.phase === "ended" && s.reason === "taken_over";
}

/** The node as pages show it. */
export type NodeState =
  | { phase: "idle" }
  | { phase: "connecting"; attempt: number }
  | { phase: "connected"; map: FullMap; status: EngineStatus }
  | { phase: "ended"; reason: EndReason }
  | { phase: "failed"; message: string };

/** Longest a page may ask a call to wait. */
const MAX_CALL_TIMEOUT_MS = 120_000;
const host = z.string().min(1).max(253);
const timeoutMs = z.number().int().positive().max(MAX_CALL_TIMEOUT_MS).optional();

export const Call = z.discriminatedUnion("op", [
  z.strictObject({ op: z.literal("join") }),
  z.strictObject({ op: z.literal("stop") }),
  z.strictObject({ op: z.literal("leave") }),
  z.strictObject({ op: z.literal("status") }),
  z.strictObject({ op: z.literal("ping"), host, timeoutMs }),
  z.strictObject({ op: z.literal("connectTcp"), host, port: z.number().int().min(1).max(65535), timeoutMs }),
]);
export type Call = z.infer<typeof Call>;

/** Data-channel messages a page hands the worker in one batch, at most. */
export const MAX_RTC_BATCH = 4096;
const link = z.number().int().nonnegative();

/**
 * What pages send the worker, checked there: every tab of the origin reaches
 * the worker, including stale ones of an older version of the app.
 */
export const ToWorker = z.discriminatedUnion("t", [
  /** A page arrives: who is logged in, what this node is called, whether the page can make WebRTC connections. */
  z.strictObject({
    t: z.literal("attach"),
    user: z.string().min(1).max(200),
    hostname: z.string().min(1).max(63),
    rtc: z.boolean(),
    legacyKey: z.string().max(200).optional(),
  }),
  z.strictObject({ t: z.literal("heartbeat") }),
  z.strictObject({ t: z.literal("detach") }),
  z.strictObject({ t: z.literal("call"), id: z.number().int().nonnegative(), call: Call }),
  z.discriminatedUnion("ev", [
    z.strictObject({ t: z.literal("rtc"), link, ev: z.literal("signal"), signal: RtcSignal }),
    z.strictObject({ t: z.literal("rtc"), link, ev: z.literal("open") }),
    z.strictObject({
      t: z.literal("rtc"),
      link,
      ev: z.literal("message"),
      data: z.array(z.instanceof(ArrayBuffer)).max(MAX_RTC_BATCH),
    }),
    z.strictObject({ t: z.literal("rtc"), link, ev: z.literal("close"), reason: z.string().max(2000) }),
  ]),
]);
export type ToWorker = z.infer<typeof ToWorker>;

/**
 * What one worker of this browser tells the others (one per version of the
 * app, over a BroadcastChannel): a user stopped the node (Disconnect, Sign
 * out), which may run in another version's worker. Checked on arrival, as
 * any message from another script; fields a later version adds are ignored,
 * so that older workers still understand it.
 */
export const ToWorkers = z.object({ t: z.literal("stopped"), user: z.string().min(1).max(200) });
export type ToWorkers = z.infer<typeof ToWorkers>;

export type ToPage =
  | { t: "state"; state: NodeState }
  /** The connected node's counters and paths (the map unchanged since the last "state"). */
  | { t: "status"; status: EngineStatus }
  | { t: "result"; id: number; ok: true; value: unknown }
  | { t: "result"; id: number; ok: false; error: { message: string; code?: string } }
  | { t: "rtc-open"; link: number; opts: DirectLinkOptions }
  | { t: "rtc-signal"; link: number; signal: RtcSignal }
  | { t: "rtc-send"; link: number; data: ArrayBuffer[] }
  | { t: "rtc-close"; link: number }
  /** The key from the page's storage (`attach`'s `legacyKey`) is in the worker's: the page may forget it. */
  | { t: "legacy-key-kept" };

/** What `connectTcp` answers: the connection's streams, transferred to the page. */
export interface TransferredConnection {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
  remote: { address: string; port: number };
}

export type { PingResult };

/** A page silent this long is gone (its data channels close). */
export const PAGE_TIMEOUT_MS = 7000;
export const HEARTBEAT_MS = 2000;
/** Pages get the node's status this often (bytes, round trips and stalls change without events). */
export const STATUS_EVERY_MS = 1000;
