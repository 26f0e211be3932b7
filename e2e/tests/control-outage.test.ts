// The control server killed (SIGKILL) in the middle of a session and started
// again: two nodes on a direct UDP path keep their open TCP connection and
// keep pinging each other on their last map while it is gone (the data
// plane does not need the control server), say that they are retrying, and
// reconnect on their own when it is back — with the same addresses, and a
// change made after the restart reaching them.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPreAuthKey } from "@trellis/control";
import { nodeEngine, openUdpSocket } from "@trellis/client/node";
import type { NodeEngine, TcpConnection } from "@trellis/client";
import { openDatabase } from "@trellis/db";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { freePort, startTrellis, tempDataDir, type RunningTrellis } from "../src/server";
import { until } from "../src/wait";

const data = tempDataDir();
let port: number;
let trellis: RunningTrellis;
let key: string;
const engines: NodeEngine[] = [];

beforeAll(async () => {
  port = await freePort();
  trellis = await startTrellis({ dataDir: data.dir, port });
  const db = await openDatabase(`file:${join(data.dir, "trellis.db")}`);
  key = (await createPreAuthKey(db, { tags: ["tag:node"], reusable: true }, "local")).key;
  await db.close();
}, 180_000);

afterAll(async () => {
  for (const e of engines) e.close();
  await trellis?.stop();
  data.remove();
}, 60_000);

async function node(hostname: string): Promise<NodeEngine> {
  const e = nodeEngine({
    baseUrl: trellis.url,
    privateKey: generateKeyPair().privateKey,
    register: { preAuthKey: key, hostname, os: "linux" },
    webrtc: false,
    udp: await openUdpSocket(0),
  });
  engines.push(e);
  await e.start();
  return e;
}

async function echoRoundTrip(c: TcpConnection, text: string): Promise<string> {
  const writer = c.writable.getWriter();
  const reader = c.readable.getReader();
  await writer.write(new TextEncoder().encode(text));
  let got = "";
  while (got.length < text.length) {
    const r = await reader.read();
    if (r.done) throw new Error("the connection ended");
    got += new TextDecoder().decode(r.value);
  }
  writer.releaseLock();
  reader.releaseLock();
  return got;
}

describe("a control server outage", () => {
  it("leaves open connections and direct paths working, and the nodes reconnect when it returns", async () => {
    const a = await node("alpha");
    const b = await node("beta");
    b.listenTcp(7, (c) => void c.readable.pipeTo(c.writable).catch(() => undefined));
    await until("each in the other's map", () =>
      [a, b].every((e) => e.netmap?.peers.length === 1 && e.netmap.peers[0]!.endpoints.length > 0),
    );
    await until("a direct UDP path", async () => {
      await a.ping("beta", { timeoutMs: 2000 }).catch(() => null);
      return a.status().peers.find((p) => p.name === "beta")?.path === "direct";
    });
    const conn = await a.connectTcp("beta", 7);
    expect(await echoRoundTrip(conn, "before")).toBe("before");
    const addresses = a.netmap!.node.addresses;

    await trellis.crash();
    await until("the nodes noticing", () => a.status().control !== "connected", 30_000);
    // Gone: the control server, and the relay it hosted. The direct path carries on.
    for (let i = 0; i < 3; i++) {
      expect(await echoRoundTrip(conn, `during ${i}`)).toBe(`during ${i}`);
      expect((await a.ping("beta", { timeoutMs: 3000 })).path).toBe("direct");
    }
    expect(a.status().control).toMatch(/retrying|connecting/);

    trellis = await startTrellis({ dataDir: data.dir, port });
    await until(
      "both nodes reconnected",
      () => [a, b].every((e) => e.status().control === "connected"),
      60_000,
    );
    expect(a.netmap!.node.addresses).toEqual(addresses);
    expect(await echoRoundTrip(conn, "after")).toBe("after");
    // The new server's changes reach them: a third node appears in both maps.
    await node("gamma");
    await until("gamma in the maps", () =>
      [a, b].every((e) => e.netmap?.peers.some((p) => p.name === "gamma")),
    );
    await conn.close();
  }, 240_000);
});
