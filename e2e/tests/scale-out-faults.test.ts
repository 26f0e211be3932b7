// Scale-out under faults, as deployed: two replicas (each `npm start`'s
// server) on one PostgreSQL behind a front that sends each new connection to
// the first replica that accepts it. With nodes (the engine's Node flavour)
// streaming from the first replica, it is killed (SIGKILL): the nodes move
// to the second on their own, keep their addresses, show online, and get a
// change made there. Then PostgreSQL is taken down in the middle of things:
// a policy saved during the outage fails clearly (503), and one saved after
// it reaches every node. Finally the killed replica comes back and the
// nodes carry on. No machine is lost or duplicated.
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPreAuthKey } from "@trellis/control";
import { nodeEngine } from "@trellis/client/node";
import type { NodeEngine } from "@trellis/client";
import { openDatabase } from "@trellis/db";
import { postgresBinDir, startTempPostgres, type TempPostgres } from "@trellis/db/testing/postgres";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { api, firstAdmin, type Caller } from "../src/console";
import { startFailoverProxy, type FailoverProxy } from "../src/failover";
import { freePort, startTrellis, tempDataDir, type RunningTrellis } from "../src/server";
import { until } from "../src/wait";

const hasPostgres = postgresBinDir() !== null;
const SECRET = "a-shared-session-secret-for-both-replicas-000000";
const dataA = tempDataDir();
const dataB = tempDataDir();
let pg: TempPostgres;
let front: FailoverProxy;
let a: RunningTrellis;
let b: RunningTrellis;
let portA: number;
let admin: Caller;
let key: string;
const engines: NodeEngine[] = [];

const replicaEnv = () => ({
  DATABASE_URL: pg.url,
  TRELLIS_AUTH_SECRET: SECRET,
  TRELLIS_PUBLIC_URL: front.url,
});

beforeAll(async () => {
  if (!hasPostgres) return;
  pg = await startTempPostgres();
  portA = await freePort();
  const portB = await freePort();
  front = await startFailoverProxy([portA, portB]);
  a = await startTrellis({ dataDir: dataA.dir, port: portA, env: replicaEnv() });
  // Replicas share the control key (README: scaling out).
  copyFileSync(join(dataA.dir, "control.key"), join(dataB.dir, "control.key"));
  b = await startTrellis({ dataDir: dataB.dir, port: portB, env: replicaEnv() });
  // Each start replaces the setup token: the last replica's link is the one that works.
  admin = await firstAdmin(front.url, b.setupLink()!.replace(b.url, front.url));
  const db = await openDatabase(pg.url);
  key = (await createPreAuthKey(db, { tags: ["tag:node"], reusable: true }, "local")).key;
  await db.close();
}, 240_000);

afterAll(async () => {
  for (const e of engines) e.close();
  await a?.stop();
  await b?.stop();
  await front?.close();
  pg?.stop();
  dataA.remove();
  dataB.remove();
}, 60_000);

async function node(hostname: string): Promise<NodeEngine> {
  const e = nodeEngine({
    baseUrl: front.url,
    privateKey: generateKeyPair().privateKey,
    register: { preAuthKey: key, hostname, os: "linux" },
    webrtc: false,
  });
  engines.push(e);
  await e.start();
  return e;
}

async function machines(): Promise<
  { name: string; online: boolean; ipv4: string | null; ipv6: string | null }[]
> {
  const res = await api(front.url, admin, "GET", "/api/v1/machines?limit=100");
  expect(res.status).toBe(200);
  return res.body.items;
}

const policy = (ports: string) =>
  JSON.stringify({
    tagOwners: { "tag:node": [] },
    acls: [{ action: "accept", src: ["tag:node"], dst: [`tag:node:${ports}`] }],
  });

/** The node's filter has the policy's rule for exactly `port` (the change reached it). */
const hasRuleFor = (e: NodeEngine, port: number) =>
  (e.netmap?.packetFilter ?? []).some((r) =>
    (r.DstPorts ?? []).some((d) => d.Ports.First === port && d.Ports.Last === port),
  );

describe.skipIf(!hasPostgres)("two replicas on PostgreSQL, one killed, the database restarted", () => {
  it("nodes move to the live replica, changes keep reaching them, nothing is lost or duplicated", async () => {
    const nodes = await Promise.all(["n1", "n2", "n3", "n4"].map(node));
    await until("every node sees the others", () => nodes.every((e) => e.netmap?.peers.length === 3));
    const addresses = new Map(nodes.map((e) => [e.netmap!.node.name, e.netmap!.node.addresses]));

    await a.crash();
    await until("the nodes noticed", () => nodes.some((e) => e.status().control !== "connected"), 30_000);
    await until(
      "every node back, on the live replica",
      () => nodes.every((e) => e.status().control === "connected"),
      60_000,
    );
    for (const e of nodes) expect(e.netmap!.node.addresses).toEqual(addresses.get(e.netmap!.node.name));
    // A change made there reaches all of them: a new node appears in every map.
    await node("n5");
    await until(
      "n5 in every map",
      () => nodes.every((e) => e.netmap?.peers.some((p) => p.name.startsWith("n5"))),
      30_000,
    );
    await until(
      "all five online, once each",
      async () => {
        const list = await machines();
        return list.length === 5 && list.every((m) => m.online);
      },
      30_000,
    );

    // The database goes away: a save fails clearly, and changes nothing.
    pg.down();
    const during = await api(front.url, admin, "PUT", "/api/v1/policy", { text: policy("2222") });
    expect(during.status).toBe(503);
    expect(during.body.error).toBe("database_unavailable");
    pg.up();
    // Back: a save succeeds (retrying while the replica reconnects) and reaches every node.
    await until(
      "a policy save after the restart",
      async () => {
        const res = await api(front.url, admin, "PUT", "/api/v1/policy", { text: policy("3333") });
        return res.status === 200;
      },
      30_000,
    );
    await until(
      "the new policy in every node's filter",
      () => engines.every((e) => hasRuleFor(e, 3333)),
      30_000,
    );
    expect(engines.some((e) => hasRuleFor(e, 2222))).toBe(false);

    // The killed replica returns; the nodes carry on where they are.
    a = await startTrellis({ dataDir: dataA.dir, port: portA, env: replicaEnv() });
    await node("n6");
    await until(
      "n6 in every map",
      () => nodes.every((e) => e.netmap?.peers.some((p) => p.name.startsWith("n6"))),
      30_000,
    );
    const list = await machines();
    expect(list.map((m) => m.name).sort()).toEqual(["n1", "n2", "n3", "n4", "n5", "n6"]);
    const ips = list.flatMap((m) => [m.ipv4, m.ipv6]);
    expect(ips.every((ip) => ip !== null)).toBe(true);
    expect(new Set(ips).size, "no address given twice").toBe(12);
  }, 300_000);
});
