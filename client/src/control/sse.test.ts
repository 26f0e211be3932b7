import { describe, expect, it } from "vitest";
import { readSse } from "./sse";

function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const ch of chunks) c.enqueue(enc.encode(ch));
      c.close();
    },
  });
}

describe("readSse", () => {
  it("parses events split across chunks and skips heartbeats", async () => {
    const events = [];
    for await (const e of readSse(
      streamOf([
        "id: 0\nevent: full\nda",
        'ta: {"a":1}\n\n: heartbeat\n\n',
        "event: delta\ndata: x\ndata: y\n\n",
      ]),
    )) {
      events.push(e);
    }
    expect(events).toEqual([
      { event: "full", id: "0", data: '{"a":1}' },
      { event: "delta", data: "x\ny" },
    ]);
  });
});
