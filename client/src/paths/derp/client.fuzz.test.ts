// Bad input from a relay, as tables of generated cases (fast-check): the
// node's DERP client must survive whatever a hostile or broken relay sends —
// garbage instead of the handshake, and after it every frame type with any
// payload, truncated or oversized, cut anywhere. Outcome per case: the
// handshake fails with a DerpClientError, or the client closes with a reason,
// or it hands well-formed events to its handlers; nothing throws out of the
// socket's message handler.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { fuzzRuns, recordCases } from "@trellis/proto/fuzz";
import { DerpClient, DerpClientError, type WebSocketLike } from "./client";
import { FRAME_HEADER_LEN, FrameType, KEY_LEN, MAGIC, encodeFrame } from "./frame";
import { openBox, sealBox } from "./box";

/** A socket the test plays the relay on. */
class FakeSocket implements WebSocketLike {
  binaryType = "arraybuffer";
  readyState = 1;
  bufferedAmount = 0;
  sent: Uint8Array[] = [];
  closed = false;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code?: number; reason?: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  send(data: Uint8Array): void {
    this.sent.push(data.slice());
  }
  close(): void {
    this.closed = true;
    this.readyState = 3;
  }
  /** Deliver bytes as the relay would (an ArrayBuffer per message). */
  deliver(bytes: Uint8Array): void {
    this.onmessage?.({ data: bytes.slice().buffer });
  }
}

const server = generateKeyPair();
const serverKeyFrame = () => encodeFrame(FrameType.ServerKey, MAGIC, server.publicKey);

/** A client through the whole handshake with the fake relay. */
async function connected() {
  const node = generateKeyPair();
  const ws = new FakeSocket();
  const pending = DerpClient.connect({
    url: "ws://relay.test/derp",
    privateKey: node.privateKey,
    socketFactory: () => ws,
    timeoutMs: 5_000,
  });
  ws.deliver(serverKeyFrame());
  const info = ws.sent[0]!;
  const boxed = info.subarray(FRAME_HEADER_LEN + KEY_LEN);
  expect(openBox(boxed, server.privateKey, node.publicKey)).not.toBeNull();
  ws.deliver(
    encodeFrame(
      FrameType.ServerInfo,
      sealBox(new TextEncoder().encode("{}"), server.privateKey, node.publicKey),
    ),
  );
  return { client: await pending, ws };
}

function rawFrame(type: number, len: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_LEN + payload.length);
  out[0] = type;
  new DataView(out.buffer).setUint32(1, len >>> 0);
  out.set(payload, FRAME_HEADER_LEN);
  return out;
}

const FRAME_TYPES = Object.values(FrameType) as number[];
const frame = fc
  .record({
    type: fc.oneof(fc.constantFrom(...FRAME_TYPES), fc.integer({ min: 0, max: 255 })),
    payload: fc.uint8Array({ maxLength: 120 }),
    lie: fc.oneof(
      { weight: 6, arbitrary: fc.constant(0) },
      { weight: 1, arbitrary: fc.integer({ min: -120, max: 120 }) },
      { weight: 1, arbitrary: fc.constantFrom(70_000, 0xffffffff) },
    ),
  })
  .map(({ type, payload, lie }) =>
    rawFrame(type, lie > 60_000 ? lie : Math.max(0, payload.length + lie), payload),
  );
const stream = fc
  .tuple(fc.array(frame, { maxLength: 12 }), fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1 }))
  .map(([frames, cuts]) => {
    const all = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
    let o = 0;
    for (const f of frames) {
      all.set(f, o);
      o += f.length;
    }
    const chunks: Uint8Array[] = [];
    for (let off = 0, i = 0; off < all.length; i++) {
      const n = cuts[i % cuts.length]!;
      chunks.push(all.subarray(off, off + n));
      off += n;
    }
    return chunks;
  });

describe("the DERP client refuses a relay's bad input, cleanly", () => {
  it("garbage instead of the handshake fails the connect with a DerpClientError", async () => {
    const runs = fuzzRuns(300);
    await fc.assert(
      fc.asyncProperty(stream, fc.boolean(), async (chunks, withKey) => {
        const ws = new FakeSocket();
        const pending = DerpClient.connect({
          url: "ws://relay.test/derp",
          privateKey: generateKeyPair().privateKey,
          socketFactory: () => ws,
          timeoutMs: 5_000,
        });
        if (withKey) ws.deliver(serverKeyFrame());
        for (const ch of chunks) ws.deliver(ch);
        ws.onclose?.({ code: 1006 });
        const outcome = await pending.then(
          (c) => {
            c.close();
            return "connected";
          },
          (e: unknown) => e,
        );
        // A forged ServerInfo cannot authenticate, so garbage never logs in.
        expect(outcome).toBeInstanceOf(DerpClientError);
      }),
      { numRuns: runs },
    );
    recordCases("bad input", "DERP handshake from a relay (client)", runs);
  });

  it("any frames after the handshake: well-formed events or a close with a reason, never a throw", async () => {
    const runs = fuzzRuns(300);
    await fc.assert(
      fc.asyncProperty(stream, async (chunks) => {
        const { client, ws } = await connected();
        const closes: string[] = [];
        client.on({
          packet: (src, data) => {
            expect(src).toHaveLength(KEY_LEN);
            expect(data).toBeInstanceOf(Uint8Array);
          },
          peerGone: (key) => expect(key).toHaveLength(KEY_LEN),
          peerPresent: (key, endpoint) => {
            expect(key).toHaveLength(KEY_LEN);
            if (endpoint) expect(endpoint.ip).toHaveLength(16);
          },
          health: (m) => expect(typeof m).toBe("string"),
          close: (reason) => closes.push(reason),
        });
        for (const ch of chunks) expect(() => ws.deliver(ch)).not.toThrow();
        if (client.closed) expect(closes.join("").length).toBeGreaterThan(0);
        client.close();
      }),
      { numRuns: runs },
    );
    recordCases("bad input", "DERP frames from a relay (client)", runs);
  });

  it("closes, naming the limit, on a frame announcing more than it may", async () => {
    const { client, ws } = await connected();
    const closes: string[] = [];
    client.on({ close: (r) => closes.push(r) });
    ws.deliver(rawFrame(FrameType.RecvPacket, 0xffffffff, new Uint8Array(0)));
    expect(client.closed).toBe(true);
    expect(closes.join(" ")).toMatch(/exceeds|limit|too large/i);
  });
});
