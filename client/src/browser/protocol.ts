// Messages between Trellis pages and the browser node's SharedWorker (one
// engine per browser profile; every tab is the same node). Pages ask, the
// worker answers and broadcasts its state; the page that hosts WebRTC (a
// worker cannot) carries data channels for the worker. Data-channel messages
// cross as transferred ArrayBuffers, in batches. The private key never
// crosses: it is made, kept and used in the worker.
import type { FullMap } from "@trellis/proto/node";
import type { EngineStatus, PingResult } from "../engine/engine";
import type { RtcSignal } from "../paths/signalling";
import type { DirectLinkOptions } from "../paths/webrtc";

/** The node as pages show it. */
export type NodeState =
  | { phase: "idle" }
  | { phase: "connecting"; attempt: number }
  | { phase: "connected"; map: FullMap; status: EngineStatus }
  | { phase: "ended"; reason: "deleted" | "key_expired" | "key_rotated" | "unauthorized" | "left" }
  | { phase: "failed"; message: string };

export type Call =
  | { op: "join" }
  | { op: "stop" }
  | { op: "leave" }
  | { op: "status" }
  | { op: "ping"; host: string; timeoutMs?: number }
  | { op: "connectTcp"; host: string; port: number; timeoutMs?: number };

export type ToWorker =
  /** A page arrives: who is logged in, what this node is called, whether the page can make WebRTC connections. */
  | { t: "attach"; user: string; hostname: string; rtc: boolean; legacyKey?: string }
  | { t: "heartbeat" }
  | { t: "detach" }
  | { t: "call"; id: number; call: Call }
  | { t: "rtc"; link: number; ev: "signal"; signal: RtcSignal }
  | { t: "rtc"; link: number; ev: "open" }
  | { t: "rtc"; link: number; ev: "message"; data: ArrayBuffer[] }
  | { t: "rtc"; link: number; ev: "close"; reason: string };

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
