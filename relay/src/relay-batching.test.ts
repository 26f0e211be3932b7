// The relay writes what one turn of the event loop produced for a client
// together: over WebSocket as messages of at most 32 KiB (Go WebSocket
// readers refuse larger ones), a frame spanning messages when it must; and a
// connection the relay closes itself still gets its last frame first.
import { afterEach, describe, expect, it } from "vitest";
import type { WebSocket } from "ws";
import {
  DerpClient,
  FrameType,
  MAX_PACKET_SIZE,
  encodeFrame,
  type WebSocketLike,
} from "@trellis/client/derp";
import { openWebSocket } from "@trellis/client/node";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { WS_MAX_MESSAGE } from "./http";
import { connectClient, rawDerpClient, startTestRelay, waitFor, type TestRelay } from "./testing/harness";

let relay: TestRelay | null = null;
const cleanups: (() => void)[] = [];
afterEach(async () => {
  cleanups.splice(0).forEach((c) => c());
  await relay?.stop();
  relay = null;
});

/** A `ws` socket factory that records the size of every message the client receives. */
function recordingReceives(): {
  factory: (url: string, protocols: string[]) => WebSocketLike;
  sizes: number[];
} {
  const sizes: number[] = [];
  return {
    sizes,
    factory: (url, protocols) => {
      const ws = openWebSocket(url, protocols);
      (ws as unknown as WebSocket).on("message", (d: ArrayBuffer | Buffer) => sizes.push(d.byteLength));
      return ws;
    },
  };
}

describe("relay write batching", () => {
  it("sends a WebSocket reader one turn's packets in few messages of at most 32 KiB, and a 64 KiB packet whole", async () => {
    relay = await startTestRelay();
    const rec = recordingReceives();
    const key = generateKeyPair();
    const b = await DerpClient.connect({
      url: relay.url,
      privateKey: key.privateKey,
      socketFactory: rec.factory,
    });
    cleanups.push(() => b.close());
    const got: Uint8Array[] = [];
    b.on({ packet: (_src, data) => got.push(data.slice()) });
    // A raw sender writes all its frames at once: the relay reads them in one turn.
    const a = await rawDerpClient(relay.port, generateKeyPair());
    cleanups.push(() => a.sock.destroy());
    const sent = Array.from({ length: 100 }, (_, i) => new Uint8Array(1200).fill(i));
    sent.push(new Uint8Array(MAX_PACKET_SIZE).fill(0xab));
    const before = rec.sizes.length;
    a.sock.write(Buffer.concat(sent.map((p) => encodeFrame(FrameType.SendPacket, key.publicKey, p))));
    await waitFor(() => got.length === sent.length, "every packet at b");
    expect(got.map((g, i) => Buffer.from(g).equals(sent[i]!))).toEqual(sent.map(() => true));
    const messages = rec.sizes.slice(before);
    expect(Math.max(...messages)).toBeLessThanOrEqual(WS_MAX_MESSAGE);
    // 100 × 1,237 + 65,573 bytes of frames: a handful of full messages, not one per packet.
    const bytes = messages.reduce((x, y) => x + y, 0);
    expect(bytes).toBe(100 * (5 + 32 + 1200) + 5 + 32 + MAX_PACKET_SIZE);
    expect(messages.length).toBeLessThan(20);
  });

  it("tells a connection replaced by a newer one for its key why, before closing it", async () => {
    relay = await startTestRelay();
    const key = generateKeyPair();
    const first = await connectClient(relay.url, key);
    const health: string[] = [];
    let closed = false;
    first.client.on({ health: (m) => health.push(m), close: () => (closed = true) });
    cleanups.push(() => first.client.close());
    const second = await connectClient(relay.url, key);
    cleanups.push(() => second.client.close());
    await waitFor(() => closed, "the first connection closed");
    expect(health).toEqual(["replaced by a newer connection"]);
    expect(relay.relay.server.clientCount).toBe(1);
    // The newer connection is the one packets reach.
    const other = await connectClient(relay.url);
    cleanups.push(() => other.client.close());
    const got: string[] = [];
    second.client.on({ packet: (_s, d) => got.push(new TextDecoder().decode(d)) });
    other.client.send(key.publicKey, new TextEncoder().encode("to the newest"));
    await waitFor(() => got.length === 1, "the packet at the newer connection");
  });
});
