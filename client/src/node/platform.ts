// Node's platform parts for the engine: WebSockets come from the `ws`
// package (Node 20 has no global WebSocket).
import WebSocket from "ws";
import type { WebSocketLike } from "../paths/derp/client";

/** A WebSocket to `url`, without per-message compression (DERP frames are encrypted, so incompressible). */
export function openWebSocket(url: string, protocols: string[]): WebSocketLike {
  return new WebSocket(url, protocols, { perMessageDeflate: false }) as unknown as WebSocketLike;
}
