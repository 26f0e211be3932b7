// Two gateways, each behind a masquerading NAT of its own, find a direct
// UDP path to each other: each learns its public endpoint from the relay's
// STUN server and publishes it through the control server; pings to the
// peer's endpoints plus a "call me maybe" over the relay open both NATs at
// once. When a NAT drops UDP the relay carries on without a lost ping, and
// when UDP returns, so does the direct path. Everything as a user runs it:
// `trellis up`, `trellis ping`, `trellis status --json`, `trellis netcheck`.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPreAuthKey } from "@trellis/control";
import { openDatabase, type Database } from "@trellis/db";
import { cli, stopDaemon } from "../src/gateway";
import { canUseNetns, createDoubleNatTopology, type DoubleNatTopology } from "../src/netns";
import { startTrellis, tempDataDir, type RunningTrellis } from "../src/server";
import { until } from "../src/wait";

if (!canUseNetns) console.warn("skipping NAT traversal: needs root, ip netns and nft");

const data = tempDataDir();
const work = mkdtempSync(join(tmpdir(), "trellis-nat-"));
const keyFile = join(work, "auth.key");
const dirA = join(work, "a");
const dirB = join(work, "b");
let topo: DoubleNatTopology;
let trellis: RunningTrellis;
let db: Database;
let url: string;

interface PeerStatus {
  name: string;
  path: string;
  pathDetail: string;
}

async function peerOf(dir: string, ns: string, name: string): Promise<PeerStatus | undefined> {
  const r = await cli(["status", "--json", "--state-dir", dir], ns, 15_000);
  if (r.code !== 0) throw new Error(`trellis status failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { peers: PeerStatus[] }).peers.find((p) => p.name === name);
}

/** Ping until `pred` holds for the peer's status (pings keep traffic, and so path upkeep, going). */
async function pingUntil(what: string, pred: (p: PeerStatus) => boolean, ms = 45_000): Promise<PeerStatus> {
  let last: unknown = null;
  try {
    return await until(
      what,
      async () => {
        const ping = await cli(["ping", "gw-b", "--timeout", "3", "--state-dir", dirA], topo.a.ns, 15_000);
        const p = await peerOf(dirA, topo.a.ns, "gw-b");
        last = { ping: ping.stdout || ping.stderr, peer: p };
        return ping.code === 0 && p && pred(p) ? p : null;
      },
      ms,
    );
  } catch (err) {
    const b = await cli(["status", "--json", "--state-dir", dirB], topo.b.ns, 15_000);
    throw new Error(`${(err as Error).message}; last seen at A: ${JSON.stringify(last)}; B: ${b.stdout}`, {
      cause: err,
    });
  }
}

describe.skipIf(!canUseNetns)("NAT traversal between gateways", () => {
  beforeAll(async () => {
    topo = createDoubleNatTopology();
    trellis = await startTrellis({ dataDir: data.dir, env: { HOST: topo.hostIp } });
    url = trellis.url.replace("127.0.0.1", topo.hostIp);
    db = await openDatabase(`file:${join(data.dir, "trellis.db")}`);
    const key = (await createPreAuthKey(db, { tags: ["tag:node"], reusable: true }, "local")).key;
    writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });
    for (const [dir, host, name] of [
      [dirA, topo.a, "gw-a"],
      [dirB, topo.b, "gw-b"],
    ] as const) {
      const up = await cli(
        [
          "up",
          "--login-server",
          url,
          "--auth-key",
          `file:${keyFile}`,
          "--hostname",
          name,
          "--userspace",
          "--state-dir",
          dir,
        ],
        host.ns,
      );
      expect(up.code, up.stderr).toBe(0);
    }
  }, 180_000);

  afterAll(async () => {
    const errors: unknown[] = [];
    for (const dir of [dirA, dirB]) await stopDaemon(dir).catch((err: unknown) => errors.push(err));
    try {
      topo?.remove();
    } catch (err) {
      errors.push(err);
    }
    await db?.close();
    await trellis?.stop();
    data.remove();
    rmSync(work, { recursive: true, force: true });
    if (errors.length) throw new AggregateError(errors, "cleanup failed");
  }, 60_000);

  it("learns the public endpoint behind the NAT from STUN (netcheck)", async () => {
    const r = await until("a netcheck with UDP", async () => {
      const res = await cli(["netcheck", "--json", "--state-dir", dirA], topo.a.ns, 30_000);
      if (res.code !== 0) return null;
      const report = JSON.parse(res.stdout) as {
        udp: boolean;
        stun: { mapped: string | null }[];
        endpoints: string[];
      };
      return report.udp ? report : null;
    });
    // The STUN server saw the NAT's public address, not the private one.
    expect(r.stun[0]!.mapped).toMatch(new RegExp(`^${topo.a.publicIp.replaceAll(".", "\\.")}:\\d+$`));
    expect(r.endpoints).toContain(r.stun[0]!.mapped);
    const text = await cli(["netcheck", "--state-dir", dirA], topo.a.ns, 30_000);
    expect(text.stdout).toMatch(/UDP: true/);
    expect(text.stdout).toMatch(/Relay latencies/);
  });

  it("goes direct through both NATs, falls back to the relay when UDP is dropped, and returns", async () => {
    const direct = await pingUntil("a direct path from A to B", (p) => p.path === "direct");
    // Through B's NAT: the path is B's public address.
    expect(direct.pathDetail).toMatch(new RegExp(`^UDP ${topo.b.publicIp.replaceAll(".", "\\.")}:\\d+`));
    const back = await peerOf(dirB, topo.b.ns, "gw-a");
    expect(back?.path).toBe("direct");
    const status = await cli(["status", "--state-dir", dirA], topo.a.ns);
    expect(status.stdout).toMatch(/gw-b .* direct/);

    const block = topo.a.blockUdp();
    try {
      const relayed = await pingUntil("the relay taking over", (p) => p.path === "relay");
      expect(relayed.pathDetail).toMatch(/relay region 1/);
      // Every ping is still answered while UDP is dropped.
      for (let i = 0; i < 3; i++) {
        const ping = await cli(["ping", "gw-b", "--timeout", "5", "--state-dir", dirA], topo.a.ns);
        expect(ping.stdout).toMatch(/via relay/);
      }
    } finally {
      block.remove();
    }
    await pingUntil("the direct path again", (p) => p.path === "direct");
  }, 180_000);
});
