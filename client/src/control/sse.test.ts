import { describe, expect, it } from "vitest";
import { readSse, SseError } from "./sse";

function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const ch of chunks) c.enqueue(enc.encode(ch));
      c.close();
    },
  });
}

async function all(chunks: string[], opts?: Parameters<typeof readSse>[1]) {
  const events = [];
  for await (const e of readSse(streamOf(chunks), opts)) events.push(e);
  return events;
}

describe("readSse", () => {
  it("parses events split across chunks and skips heartbeats", async () => {
    let comments = 0;
    expect(
      await all(
        ["id: 0\nevent: full\nda", 'ta: {"a":1}\n\n: heartbeat\n\n', "event: delta\ndata: x\ndata: y\n\n"],
        {
          onComment: () => comments++,
        },
      ),
    ).toEqual([
      { event: "full", id: "0", data: '{"a":1}' },
      { event: "delta", data: "x\ny" },
    ]);
    expect(comments).toBe(1);
  });

  it("accepts CR and CRLF line ends, as the spec allows, even split between chunks", async () => {
    expect(await all(["id: 1\r\nevent: full\r\ndata: a\r", "\n\r\nevent: delta\rdata: b\r\r"])).toEqual([
      { event: "full", id: "1", data: "a" },
      { event: "delta", data: "b" },
    ]);
  });

  it("names an event without an event field 'message' and ignores unknown fields", async () => {
    expect(await all(["data: x\nbogus: y\n\n"])).toEqual([{ event: "message", data: "x" }]);
  });

  it("ends with an error on an event larger than the limit", async () => {
    await expect(all([`data: ${"x".repeat(200)}`], { maxEventChars: 100 })).rejects.toBeInstanceOf(SseError);
  });
});
