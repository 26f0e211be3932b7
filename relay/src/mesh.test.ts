import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { DerpClient, FrameType, MAGIC, encodeFrame } from "@trellis/client/derp";
import { openWebSocket as nodeSocketFactory } from "@trellis/client/node";
import { MeshConfigError, parseMeshPeer } from "./mesh";
import { startTestRelay, type TestRelay } from "./testing/harness";

const meshKey = "cd".repeat(32);
const hex = (k: Uint8Array) => Buffer.from(k).toString("hex");
const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

/** Something at a relay URL that presents its own server key and records what it is sent. */
async function impostor() {
  const key = generateKeyPair();
  const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  await new Promise<void>((r) => wss.once("listening", () => r()));
  const received: Buffer[] = [];
  wss.on("connection", (ws) => {
    ws.on("message", (m: Buffer) => received.push(m));
    ws.send(encodeFrame(FrameType.ServerKey, MAGIC, key.publicKey));
  });
  closers.push(() => new Promise<void>((r) => wss.close(() => r())));
  return { url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/derp`, received };
}

describe("mesh peers are pinned", () => {
  it("parses wss://…/derp#relaykey:<hex> and refuses ws://, a missing pin and a bad one", () => {
    const k = generateKeyPair().publicKey;
    expect(parseMeshPeer(`wss://r2.example.com/derp#relaykey:${hex(k)}`)).toEqual({
      url: "wss://r2.example.com/derp",
      serverKey: k,
    });
    expect(() => parseMeshPeer(`ws://10.0.0.2:8080/derp#relaykey:${hex(k)}`)).toThrow(/must use wss:\/\//);
    expect(parseMeshPeer(`ws://10.0.0.2:8080/derp#relaykey:${hex(k)}`, true).url).toBe(
      "ws://10.0.0.2:8080/derp",
    );
    expect(() => parseMeshPeer("wss://r2.example.com/derp")).toThrow(/pinned/);
    expect(() => parseMeshPeer("wss://r2.example.com/derp#relaykey:abc")).toThrow(MeshConfigError);
    expect(() => parseMeshPeer("https://r2.example.com/derp#relaykey:abc")).toThrow(MeshConfigError);
  });

  it("a relay refuses to start with an unpinned or ws:// mesh peer", async () => {
    const k = generateKeyPair().publicKey;
    await expect(startTestRelay({ meshKey, meshWith: ["wss://r2.example.com/derp"] })).rejects.toThrow(
      MeshConfigError,
    );
    await expect(
      startTestRelay({ meshKey, meshWith: [`ws://127.0.0.1:1/derp#relaykey:${hex(k)}`] }),
    ).rejects.toThrow(/wss/);
  });

  it("seals nothing to a far end that presents another key than the pinned one", async () => {
    const real: TestRelay = await startTestRelay({ meshKey });
    closers.push(() => real.stop());
    const fake = await impostor();
    const err = await DerpClient.connect({
      url: fake.url,
      privateKey: generateKeyPair().privateKey,
      meshKey,
      serverKey: real.key.publicKey,
      socketFactory: nodeSocketFactory,
    }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(String(err)).toMatch(/other than the pinned one/);
    expect(fake.received).toHaveLength(0);
    // The pinned key of the real relay logs in as a mesh peer.
    const ok = await DerpClient.connect({
      url: real.url,
      privateKey: generateKeyPair().privateKey,
      meshKey,
      serverKey: real.key.publicKey,
      socketFactory: nodeSocketFactory,
    });
    ok.close();
  });

  it("never sends a mesh key without a pinned key", async () => {
    const fake = await impostor();
    await expect(
      DerpClient.connect({
        url: fake.url,
        privateKey: generateKeyPair().privateKey,
        meshKey,
        socketFactory: nodeSocketFactory,
      }),
    ).rejects.toThrow(/pinned relay key/);
    expect(fake.received).toHaveLength(0);
  });
});
