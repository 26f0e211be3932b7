// The DERP client writes the frames of one turn as one WebSocket message (a
// browser pays an IPC per message): the relay reads them as the byte stream
// DERP is, every packet arrives whole and in order, messages stay within
// 32 KiB unless one packet is larger, and the client's buffer limit still
// drops packets rather than queueing without bound.
import { afterEach, describe, expect, it } from "vitest";
import { DerpClient, RelayLink, type WebSocketLike } from "@trellis/client/derp";
import { openWebSocket } from "@trellis/client/node";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { connectClient, startTestRelay, waitFor, type TestRelay } from "./testing/harness";

let relay: TestRelay | null = null;
afterEach(async () => {
  await relay?.stop();
  relay = null;
});

/** `ws` sockets that record the size of every message the client sends. */
function recording(): { factory: (url: string, protocols: string[]) => WebSocketLike; sizes: number[] } {
  const sizes: number[] = [];
  return {
    sizes,
    factory: (url, protocols) => {
      const ws = openWebSocket(url, protocols);
      const send = ws.send.bind(ws);
      ws.send = (data: Uint8Array) => {
        sizes.push(data.byteLength);
        send(data);
      };
      return ws;
    },
  };
}

describe("DERP client batching", () => {
  it("writes one turn's packets as few messages of at most 32 KiB, delivered whole and in order", async () => {
    relay = await startTestRelay();
    const rec = recording();
    const key = generateKeyPair();
    const a = await DerpClient.connect({
      url: relay.url,
      privateKey: key.privateKey,
      socketFactory: rec.factory,
    });
    const b = await connectClient(relay.url);
    const got: Uint8Array[] = [];
    b.client.on({ packet: (_src, data) => got.push(data.slice()) });
    const handshake = rec.sizes.length;

    // 60 packets of 1,200 bytes, one of 40,000 in the middle, all in one turn.
    const sent: Uint8Array[] = [];
    for (let i = 0; i < 61; i++) {
      const p = new Uint8Array(i === 30 ? 40_000 : 1200).fill(i);
      sent.push(p);
      expect(a.send(b.key.publicKey, p)).toBe(true);
    }
    expect(rec.sizes.length - handshake).toBeLessThan(61); // written in batches, not yet all
    await waitFor(() => got.length === 61, "every packet at b");
    expect(got).toEqual(sent);
    const messages = rec.sizes.slice(handshake);
    // 60 × 1,205 bytes of frames fit in three 32 KiB messages; the big packet goes alone.
    expect(messages.length).toBeLessThanOrEqual(5);
    expect(messages.filter((n) => n > 32 * 1024)).toEqual([40_000 + 5 + 32]);
    a.close();
    b.client.close();
  });

  it("drops packets once the socket holds more than its limit", async () => {
    relay = await startTestRelay();
    const key = generateKeyPair();
    const a = await DerpClient.connect({
      url: relay.url,
      privateKey: key.privateKey,
      socketFactory: openWebSocket,
      maxBufferedBytes: 8 * 1024,
    });
    const b = generateKeyPair();
    const results: boolean[] = [];
    for (let i = 0; i < 20; i++) results.push(a.send(b.publicKey, new Uint8Array(1200)));
    // 8 KiB of frames are accepted in this turn; the rest are refused at once.
    expect(results.filter(Boolean).length).toBeGreaterThan(0);
    expect(results.filter(Boolean).length).toBeLessThan(10);
    expect(results.slice(results.indexOf(false)).every((r) => !r)).toBe(true);
    a.close();
  });

  it("holds what is sent while the link connects, a bounded few, and delivers it once up", async () => {
    relay = await startTestRelay();
    const b = await connectClient(relay.url);
    const got: string[] = [];
    b.client.on({ packet: (_src, data) => got.push(new TextDecoder().decode(data)) });
    const key = generateKeyPair();
    const link = new RelayLink({ url: relay.url, privateKey: key.privateKey, socketFactory: openWebSocket });
    // Sent at once, before the connection exists: a node's first handshake.
    const accepted: boolean[] = [];
    for (let i = 0; i < 70; i++) accepted.push(link.send(b.key.publicKey, new TextEncoder().encode(`p${i}`)));
    expect(link.connected).toBe(false);
    expect(accepted.filter(Boolean)).toHaveLength(64);
    await waitFor(() => got.length === 64, "the held packets at b");
    expect(got).toEqual(Array.from({ length: 64 }, (_, i) => `p${i}`));
    link.close();
    b.client.close();
  });
});
