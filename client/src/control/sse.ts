// Server-Sent Events over any ReadableStream of bytes (fetch's body in
// browsers and Node). Parsing is eventsource-parser's, which follows the
// WHATWG spec: LF, CR and CRLF line ends, multi-line data, comments, a BOM.
// Browser-safe.
import { createParser, type EventSourceMessage } from "eventsource-parser";

export interface SseEvent {
  /** The `event:` field; "message" when the event has none (as EventSource names it). */
  event: string;
  id?: string;
  data: string;
}

/** Largest event accepted; a full map of a large tailnet fits comfortably. */
export const MAX_EVENT_CHARS = 64 * 1024 * 1024;

export class SseError extends Error {
  override readonly name = "SseError";
}

/**
 * Yield each event of the stream; comments (heartbeats) are skipped. An event
 * larger than `maxEventChars` ends the stream with an SseError.
 *
 * Between events nothing of the last one is kept: a node idles on its map
 * stream most of the time, and a kept event would pin the text it came from.
 */
export async function* readSse(
  stream: ReadableStream<Uint8Array>,
  opts: { maxEventChars?: number; onComment?: () => void; signal?: AbortSignal } = {},
): AsyncGenerator<SseEvent> {
  const reader = stream.getReader();
  // Aborting ends the read at once, whatever the body's producer does.
  const onAbort = () => void reader.cancel().catch(() => undefined);
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  const decoder = new TextDecoder();
  let ready: SseEvent[] = [];
  let failure: Error | null = null;
  const parser = createParser({
    maxBufferSize: opts.maxEventChars ?? MAX_EVENT_CHARS,
    onEvent: (m: EventSourceMessage) =>
      ready.push({ event: m.event ?? "message", ...(m.id !== undefined ? { id: m.id } : {}), data: m.data }),
    onComment: opts.onComment,
    onError: (err) => {
      // Unknown fields are ignored, as the spec says; only an oversized event is fatal.
      if (err.type === "max-buffer-size-exceeded") failure ??= new SseError("server-sent event too large");
    },
  });
  let endsInCr = false;
  const feed = (text: string) => {
    if (text === "") return;
    parser.feed(text);
    endsInCr = text.endsWith("\r");
  };
  try {
    for (;;) {
      const read = await reader.read();
      if (read.done) {
        feed(decoder.decode());
        // A CR as the stream's last byte ends a line, but the parser waits to
        // see whether an LF follows; at the end nothing will, and CR LF is the
        // same one line end.
        if (endsInCr) parser.feed("\n");
        for (const ev of ready) yield ev;
        return;
      }
      feed(decoder.decode(read.value, { stream: true }));
      if (failure) throw failure;
      const batch = ready;
      ready = [];
      for (const ev of batch) yield ev;
    }
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
    reader.releaseLock();
  }
}
