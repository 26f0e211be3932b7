// Bad input on the map stream, as tables of generated cases (fast-check):
// whatever bytes a server (or something in between) sends, cut anywhere,
// readSse yields events with string fields or ends with an SseError — no
// other throw — and an event over the limit ends the stream rather than
// growing memory.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fuzzRuns, recordCases } from "@trellis/proto/fuzz";
import { SseError, readSse } from "./sse";

function streamOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(c) {
      for (const ch of chunks) c.enqueue(ch);
      c.close();
    },
  });
}

async function drain(chunks: Uint8Array[], maxEventChars: number): Promise<"ended" | "too large"> {
  try {
    for await (const e of readSse(streamOf(chunks), { maxEventChars })) {
      expect(typeof e.event).toBe("string");
      expect(typeof e.data).toBe("string");
      expect(e.data.length).toBeLessThanOrEqual(maxEventChars);
    }
    return "ended";
  } catch (err) {
    expect(err).toBeInstanceOf(SseError);
    return "too large";
  }
}

const enc = new TextEncoder();
/** SSE-looking lines: fields, comments, blank lines, any line ending, any text. */
const line = fc.oneof(
  fc.constantFrom("", ":", ": ping", "data", "event: map", "id: 7", "retry: x", "data: {}"),
  fc
    .tuple(fc.constantFrom("data: ", "event: ", "id: ", ":", "bogus: "), fc.string({ maxLength: 80 }))
    .map(([f, v]) => f + v),
  fc.string({ maxLength: 80 }),
);
const text = fc
  .tuple(fc.array(line, { maxLength: 30 }), fc.array(fc.constantFrom("\n", "\r", "\r\n"), { minLength: 1 }))
  .map(([lines, ends]) => lines.map((l, i) => l + ends[i % ends.length]).join(""));
const cut = (bytes: Uint8Array, sizes: number[]) => {
  const out: Uint8Array[] = [];
  for (let off = 0, i = 0; off < bytes.length; i++) {
    out.push(bytes.subarray(off, off + sizes[i % sizes.length]!));
    off += sizes[i % sizes.length]!;
  }
  return out;
};

describe("the map stream's SSE reader on bad input", () => {
  it("SSE-like text and raw bytes, cut anywhere (mid-line, mid-UTF-8): events or an SseError", async () => {
    const runs = fuzzRuns(300);
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          text.map((t) => enc.encode(t)),
          fc.uint8Array({ maxLength: 600 }),
        ),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 }),
        async (bytes, sizes) => void (await drain(cut(bytes, sizes), 4096)),
      ),
      { numRuns: runs },
    );
    recordCases("bad input", "SSE map stream", runs);
  });

  it("an event larger than the limit ends the stream with an SseError", async () => {
    const big = enc.encode(`data: ${"x".repeat(10_000)}\n\n`);
    expect(await drain(cut(big, [333]), 4096)).toBe("too large");
  });
});
