// Request bodies, bounded in bytes: the one size check for every HTTP
// endpoint (the node API on node:http and the admin API in Next.js). The
// declared Content-Length is checked first; the bytes are counted as they
// arrive as well, since a chunked body declares none.
import { ControlError } from "../errors";

/** Largest signed request body accepted by node endpoints. */
export const MAX_NODE_BODY_BYTES = 64 * 1024;

export function bodyTooLarge(limit: number): ControlError {
  return new ControlError("body_too_large", 413, `request body exceeds ${limit} bytes`);
}

/**
 * Read a whole body of at most `limit` bytes from `source` (an
 * IncomingMessage, or a web Request's body stream). Reading stops at the
 * first byte over the limit: nothing more is buffered.
 */
export async function readBody(
  source: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array> | null,
  limit: number,
  declaredLength?: string | null,
): Promise<Uint8Array> {
  if (declaredLength !== undefined && declaredLength !== null && declaredLength !== "") {
    const n = Number(declaredLength);
    if (!Number.isSafeInteger(n) || n < 0)
      throw new ControlError("bad_request", 400, "invalid Content-Length");
    if (n > limit) throw bodyTooLarge(limit);
  }
  if (!source) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of chunksOf(source)) {
    size += chunk.byteLength;
    if (size > limit) throw bodyTooLarge(limit);
    chunks.push(chunk);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

async function* chunksOf(source: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>) {
  if (!("getReader" in source)) {
    yield* source;
    return;
  }
  const reader = source.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    // Stops the body's producer when reading ends early (an oversized body).
    await reader.cancel().catch(() => undefined);
  }
}

/** Parse JSON from request bytes; malformed JSON (or bytes that are not UTF-8) is a 400. */
export function parseJson(bytes: Uint8Array | string): unknown {
  let text: string;
  try {
    text = typeof bytes === "string" ? bytes : new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return JSON.parse(text) as unknown;
  } catch {
    throw new ControlError("invalid_json", 400, "request body is not valid JSON");
  }
}
