// A client that goes away by half-closing its connection (a FIN, as a process
// that exits or a Go client that closes its conn sends) is gone at once: its
// peers hear PeerGone, packets to it are answered NotHere, it no longer
// counts as a client or a connection, and no socket is left in CLOSE_WAIT.
// Node's HTTP server sockets are allowHalfOpen, so the raw `Upgrade: DERP`
// path must act on `end` itself; the WebSocket path must too.
import { existsSync, readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type WebSocket from "ws";
import { DerpClient, FrameType, PeerGoneReason, encodeFrame } from "@trellis/client/derp";
import { openWebSocket } from "@trellis/client/node";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { connectClient, rawDerpClient, startTestRelay, waitFor, type TestRelay } from "./testing/harness";

let relay: TestRelay | null = null;
const cleanups: (() => void)[] = [];
afterEach(async () => {
  cleanups.splice(0).forEach((c) => c());
  await relay?.stop();
  relay = null;
});

const hex = (k: Uint8Array) => Buffer.from(k).toString("hex");

/** TCP sockets on loopback whose local port is `port`, in state CLOSE_WAIT (Linux's /proc). */
function closeWaitOn(port: number): number {
  const CLOSE_WAIT = "08";
  let n = 0;
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, "utf8").split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4) continue;
      const localPort = parseInt(cols[1]!.split(":")[1]!, 16);
      if (localPort === port && cols[3] === CLOSE_WAIT) n++;
    }
  }
  return n;
}

function connections(r: TestRelay): Promise<number> {
  return new Promise((resolve, reject) =>
    r.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
  );
}

async function nodeClients(r: TestRelay): Promise<number> {
  const g = await r.relay.metrics.clients.get();
  return g.values.find((v) => v.labels.kind === "node")?.value ?? 0;
}

describe("a client that half-closes its connection", () => {
  it.each(["raw", "websocket"] as const)(
    "over %s: peers get PeerGone at once, senders NotHere, and nothing stays open",
    async (transport) => {
      relay = await startTestRelay();
      const r = relay;
      const peer = await connectClient(r.url);
      cleanups.push(() => peer.client.close());
      const gone: { key: string; reason: number }[] = [];
      const got: string[] = [];
      peer.client.on({
        peerGone: (k, reason) => gone.push({ key: hex(k), reason }),
        packet: (src) => got.push(hex(src)),
      });

      const leaverKey = generateKeyPair();
      let halfClose: () => void;
      let sawServerEnd: () => boolean;
      if (transport === "raw") {
        const raw = await rawDerpClient(r.port, leaverKey);
        cleanups.push(() => raw.sock.destroy());
        // Say something to the peer, so the relay knows who to tell when it leaves.
        raw.sock.write(encodeFrame(FrameType.SendPacket, peer.key.publicKey, new Uint8Array([1])));
        let ended = false;
        raw.sock.on("end", () => (ended = true));
        halfClose = () => raw.sock.end();
        sawServerEnd = () => ended;
      } else {
        // ws's client socket: end() sends a FIN without the WebSocket close handshake.
        let opened: WebSocket | null = null;
        const client = await DerpClient.connect({
          url: r.url,
          privateKey: leaverKey.privateKey,
          socketFactory: (url, protocols) => {
            const ws = openWebSocket(url, protocols);
            opened = ws as unknown as WebSocket;
            return ws;
          },
        });
        client.send(peer.key.publicKey, new Uint8Array([1]));
        // ws keeps the TCP socket it runs on as `_socket`.
        const sock = (opened as unknown as { _socket: Socket | null } | null)?._socket;
        if (!sock) throw new Error("no socket under the WebSocket");
        let ended = false;
        sock.on("end", () => (ended = true));
        sock.on("close", () => (ended = true));
        cleanups.push(() => sock.destroy());
        halfClose = () => sock.end();
        sawServerEnd = () => ended;
      }
      await waitFor(() => got.length === 1, "the leaver's packet at its peer");
      expect(await nodeClients(r)).toBe(2);
      expect(await connections(r)).toBe(2);

      halfClose();
      // Not the idle timeout (a minute or more): within a second.
      await waitFor(
        () => gone.some((g) => g.key === hex(leaverKey.publicKey)),
        "PeerGone for the leaver",
        1000,
      );
      expect(gone).toEqual([{ key: hex(leaverKey.publicKey), reason: PeerGoneReason.Disconnected }]);
      expect(r.relay.server.has(leaverKey.publicKey)).toBe(false);

      // Sent to it afterwards: the sender is told it is not here.
      peer.client.send(leaverKey.publicKey, new Uint8Array([2]));
      await waitFor(() => gone.length === 2, "NotHere for the leaver", 1000);
      expect(gone[1]).toEqual({ key: hex(leaverKey.publicKey), reason: PeerGoneReason.NotHere });

      // The relay closed its side too: no CLOSE_WAIT, one connection and one client left.
      await waitFor(sawServerEnd, "the relay's FIN", 1000);
      let open = await connections(r);
      for (const deadline = Date.now() + 1000; open !== 1 && Date.now() < deadline;) {
        await new Promise((res) => setTimeout(res, 10));
        open = await connections(r);
      }
      expect(open).toBe(1);
      expect(closeWaitOn(r.port)).toBe(0);
      expect(await nodeClients(r)).toBe(1);
      expect(r.relay.server.connectionCount).toBe(1);

      peer.client.close();
      await waitFor(() => r.relay.server.connectionCount === 0, "the peer's departure");
      expect(await nodeClients(r)).toBe(0);
    },
  );

  it("during the handshake: the connection is released", async () => {
    relay = await startTestRelay();
    const r = relay;
    const sock = connect(r.port, "127.0.0.1");
    cleanups.push(() => sock.destroy());
    await new Promise<void>((res) => sock.once("connect", () => res()));
    sock.write("GET /derp HTTP/1.1\r\nHost: relay\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n");
    await waitFor(() => r.relay.server.connectionCount === 1, "the upgrade");
    sock.end();
    await waitFor(() => r.relay.server.connectionCount === 0, "the connection released", 1000);
    await waitFor(() => closeWaitOn(r.port) === 0, "no CLOSE_WAIT", 1000);
  });
});
