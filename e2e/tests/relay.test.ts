import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase, type Database } from "@trellis/db";
import { HealthResponse, encodeKey } from "@trellis/proto";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { ControlClient, keyHolder } from "@trellis/client";
import { DerpClient, DerpClientError } from "@trellis/client/derp";
import { createPreAuthKey } from "@trellis/control";
import { openWebSocket as nodeSocketFactory } from "@trellis/client/node";
import { CHROMIUM, hasChromium, launchChromium } from "../src/browser";
import { canUseNetns, createNatTopology, type NatTopology } from "../src/netns";
import { startTrellis, tempDataDir, type RunningTrellis } from "../src/server";

// The relay embedded in `npm start`: verify-clients against the control
// plane's nodes, packets between two registered nodes, metrics, and its STUN
// server giving Chromium a server-reflexive candidate from behind a NAT.

const data = tempDataDir();
let trellis: RunningTrellis;
let db: Database;

beforeAll(async () => {
  trellis = await startTrellis({ dataDir: data.dir, env: { TRELLIS_STUN_PORT: "0" } });
  db = await openDatabase(`file:${join(data.dir, "trellis.db")}`);
});
afterAll(async () => {
  await db?.close();
  await trellis?.stop();
  data.remove();
});

const derpUrl = () => trellis.url.replace(/^http/, "ws") + "/derp";
const connect = (privateKey: Uint8Array) =>
  DerpClient.connect({ url: derpUrl(), privateKey, socketFactory: nodeSocketFactory });

async function metric(name: string, labels: string): Promise<number> {
  const text = await (await fetch(trellis.url + "/metrics")).text();
  const m = new RegExp(`^${name}\\{${labels}\\} (\\d+)$`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

async function health() {
  return HealthResponse.parse(await (await fetch(trellis.url + "/api/health")).json());
}

describe("embedded relay", () => {
  it("admits only node keys the control plane knows, and relays between them", async () => {
    expect((await health()).relay).toMatchObject({ status: "listening", verify_clients: true });
    const a = generateKeyPair();
    const b = generateKeyPair();
    await expect(connect(a.privateKey)).rejects.toThrow(DerpClientError);

    for (const [k, name] of [
      [a, "alpha"],
      [b, "beta"],
    ] as const) {
      await db.prisma.node.create({ data: { nodeKey: encodeKey("nodekey", k.publicKey), name } });
    }
    const ca = await connect(a.privateKey);
    const cb = await connect(b.privateKey);
    const got: string[] = [];
    cb.on({ packet: (_src, p) => got.push(Buffer.from(p).toString()) });
    ca.send(b.publicKey, new TextEncoder().encode("through the embedded relay"));
    const deadline = Date.now() + 15_000;
    while (got.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(got).toEqual(["through the embedded relay"]);
    expect((await health()).relay.clients).toBe(2);

    // An expired key is refused at its next login.
    await db.prisma.node.update({
      where: { nodeKey: encodeKey("nodekey", b.publicKey) },
      data: { expiresAt: new Date(Date.now() - 1000) },
    });
    cb.close();
    await expect(connect(b.privateKey)).rejects.toThrow(DerpClientError);
    ca.close();
  });

  it("drops a node's relay connection as soon as the node is deleted", async () => {
    const key = (await createPreAuthKey(db, { tags: ["tag:ephemeral"], ephemeral: true }, "local")).key;
    const keys = generateKeyPair();
    const node = new ControlClient({ baseUrl: trellis.url, key: keyHolder(keys.privateKey) });
    await node.register({ preAuthKey: key, hostname: "leaving" });
    const c = await connect(keys.privateKey);
    let closedAt = 0;
    c.on({ close: () => (closedAt = Date.now()) });
    const t0 = Date.now();
    // An ephemeral node that logs out is deleted.
    expect(await node.logout()).toMatchObject({ deleted: true });
    // The embedded relay has no periodic recheck: a close at all comes from the deletion's event.
    while (closedAt === 0 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 10));
    expect(closedAt).toBeGreaterThan(0);
    process.stderr.write(`relay dropped the deleted node ${closedAt - t0} ms after its deletion\n`);
    expect(await metric("trellis_relay_connections_total", 'outcome="revoked"')).toBe(1);
  });

  it("serves Prometheus metrics on the same port", async () => {
    const res = await fetch(trellis.url + "/metrics");
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/trellis_relay_forwarded_packets_total\{path="local"\} 1/);
    expect(text).toMatch(/trellis_relay_connections_total\{outcome="unknown_key"\} [1-9]/);
    expect(text).toMatch(/trellis_relay_process_resident_memory_bytes/);
  });
});

describe.skipIf(!canUseNetns || !hasChromium)("STUN for browsers", () => {
  let nat: NatTopology;
  beforeAll(() => {
    nat = createNatTopology();
  });
  afterAll(() => nat?.remove());

  it("gives Chromium behind a NAT a server-reflexive candidate", async () => {
    const stunPort = (await health()).relay.stun_port!;
    expect(stunPort).toBeGreaterThan(0);
    // Chromium runs inside the client namespace; Playwright drives it over a pipe.
    const wrapperDir = mkdtempSync(join(tmpdir(), "trellis-chromium-ns-"));
    const wrapper = join(wrapperDir, "chromium");
    writeFileSync(wrapper, `#!/bin/sh\nexec ${nat.execInClient} ${CHROMIUM} "$@"\n`);
    chmodSync(wrapper, 0o755);
    // Raw IP host candidates, so the reflexive one can be told apart from them.
    const { browser, close } = await launchChromium({
      executablePath: wrapper,
      extraArgs: ["--disable-features=WebRtcHideLocalIpsWithMdns"],
    });
    try {
      const page = await browser.newPage();
      const candidates = await page.evaluate(async (url: string) => {
        const pc = new RTCPeerConnection({ iceServers: [{ urls: url }] });
        pc.createDataChannel("probe");
        const found: string[] = [];
        pc.onicecandidate = (e) => {
          if (e.candidate) found.push(e.candidate.candidate);
        };
        await pc.setLocalDescription(await pc.createOffer());
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 10_000);
          pc.onicegatheringstatechange = () => {
            if (pc.iceGatheringState === "complete") {
              clearTimeout(t);
              resolve();
            }
          };
        });
        pc.close();
        return found;
      }, `stun:${nat.hostIp}:${stunPort}`);
      const srflx = candidates.filter((c) => c.includes(" typ srflx"));
      expect(srflx.length, `candidates: ${candidates.join(" | ")}`).toBeGreaterThan(0);
      expect(srflx[0]).toContain(` ${nat.routerIp} `);
      expect(srflx[0]).toContain(`raddr ${nat.clientIp}`);
    } finally {
      await close();
      rmSync(wrapperDir, { recursive: true, force: true });
    }
  });
});
