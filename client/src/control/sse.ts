// A Server-Sent Events reader for the map stream (GET /api/v1/map), over any
// ReadableStream of bytes (fetch in browsers and Node). Browser-safe.

export interface SseEvent {
  event: string;
  id?: string;
  data: string;
}

/** Largest event accepted; a full map of a large tailnet fits comfortably. */
const MAX_EVENT_BYTES = 64 * 1024 * 1024;

/**
 * Yield each event of the stream; comments (heartbeats) are skipped.
 *
 * Between events nothing of the last one is kept (the chunk read, the block
 * parsed, the event yielded): a node idles on its map stream most of the
 * time, and a kept event would pin the whole text it was sliced from.
 */
export async function* readSse(stream: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  const state = { buf: "" };
  try {
    for (;;) {
      let read: Awaited<ReturnType<typeof reader.read>> | null = await reader.read();
      if (read.done) return;
      state.buf += decoder.decode(read.value, { stream: true });
      read = null;
      let ev: SseEvent | null;
      while ((ev = takeEvent(state)) !== null) yield ev;
      if (state.buf.length > MAX_EVENT_BYTES) throw new Error("map stream event too large");
    }
  } finally {
    reader.releaseLock();
  }
}

/** The next complete event in `state.buf` (removed from it), or null when none is complete yet. */
function takeEvent(state: { buf: string }): SseEvent | null {
  let end: number;
  while ((end = state.buf.indexOf("\n\n")) >= 0) {
    const block = state.buf.slice(0, end);
    state.buf = state.buf.slice(end + 2);
    const ev: SseEvent = { event: "message", data: "" };
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line === "" || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "data") data.push(value);
      else if (field === "event") ev.event = value;
      else if (field === "id") ev.id = value;
    }
    if (data.length === 0) continue;
    ev.data = data.join("\n");
    return ev;
  }
  return null;
}
