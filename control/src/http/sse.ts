// Server-Sent Events as the server writes them: the node's map stream
// (map-stream.ts) and the console's live updates (web's /api/v1/events)
// both use these.

export const SSE_HEADERS: Record<string, string> = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-store, no-transform",
  // Reverse proxies (nginx) must not buffer the stream.
  "x-accel-buffering": "no",
};

/** A comment line: keeps proxies and the reader from taking a quiet stream for a dead one. */
export const SSE_HEARTBEAT = ": heartbeat\n\n";

/** One event. `data` must be one line (JSON is); `id` only for events that are part of a sequence. */
export function sseText(event: string, data: string, id?: number): string {
  return `${id === undefined ? "" : `id: ${id}\n`}event: ${event}\ndata: ${data}\n\n`;
}
