// The browser's platform parts for the engine.
import type { WebSocketLike } from "../paths/derp/client";

/** A WebSocket to `url` (the browser's own). */
export function openWebSocket(url: string, protocols: string[]): WebSocketLike {
  return new WebSocket(url, protocols) as unknown as WebSocketLike;
}
