// A Server-Sent Events reader for the map stream (GET /api/v1/map), over any
// ReadableStream of bytes (fetch in browsers and Node). Browser-safe.

export interface SseEvent {
  event: string;
  id?: string;
  data: string;
}

/** Largest event accepted; a full map of a large tailnet fits comfortably. */
const MAX_EVENT_BYTES = 64 * 1024 * 1024;

/** Yield each event of the stream; comments (heartbeats) are skipped. */
export async function* readSse(stream: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
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
        yield ev;
      }
      if (buf.length > MAX_EVENT_BYTES) throw new Error("map stream event too large");
    }
  } finally {
    reader.releaseLock();
  }
}
