// Scale-out under failure: two replicas (runtimes) on one PostgreSQL
// database, one of them losing its LISTEN connection, not hearing NOTIFY at
// all, or the database restarting under a save. Every change must still
// reach the other replica's open streams and every new stream, and only
// through the mechanism under test: NOTIFY at commit when the writer's own
// connection is cut (the reader's check is an hour away), the outbox at the
// periodic check when NOTIFY never comes. Waits are bounded by the bounds
// the design promises (a second after a LISTEN connection returns, the
// check's interval), never by how fast this machine is today.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { migrate } from "@trellis/db";
import { postgresBinDir, startTempPostgres, type TempPostgres } from "@trellis/db/testing/postgres";
import { createLogger } from "@trellis/log";
import type { FullMap } from "@trellis/proto";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { listMachines, removeMachine, setMachineRoutes } from "./admin/machines";
import { localOperator } from "./auth/actor";
import { loadConfig } from "./config";
import { OUTBOX_LOCK } from "./outbox";
import { ControlRuntime, type RuntimeOptions } from "./runtime";
import { getTailnetSettings, updateDnsSettings } from "./settings";
import {
  apiRejection,
  type MapReader,
  preAuthKey,
  serveNodeApi,
  setPolicy,
  TestNode,
} from "./testing/control";

const log = createLogger("test", "silent");
const dataDir = mkdtempSync(join(tmpdir(), "trellis-scaleout-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));
const admin = localOperator();
/** A check interval that never fires within a test: arrivals then prove NOTIFY or a reconnect. */
const NEVER = 3_600_000;
/** Measured convergence times, printed with TRELLIS_TIMINGS=1. */
const timings: string[] = [];
afterAll(() => {
  if (process.env.TRELLIS_TIMINGS) console.log(timings.join("\n"));
});

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<number> {
  const start = performance.now();
  while (!(await cond())) {
    if (performance.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return performance.now();
}

/** Read `reader` until its map satisfies `pred`, at most `ms`; resolves to the instant it did. */
async function arrives(reader: MapReader, pred: (m: FullMap) => boolean, ms: number): Promise<number> {
  const start = performance.now();
  while (!pred(reader.map)) {
    const left = ms - (performance.now() - start);
    if (left <= 0) throw new Error(`not in the map within ${ms} ms`);
    await reader.next(left);
  }
  return performance.now();
}

describe.skipIf(postgresBinDir() === null)("changes reach every replica", () => {
  let server: TempPostgres;
  let n = 0;
  const runtimes: ControlRuntime[] = [];
  const readers: MapReader[] = [];
  const closers: (() => Promise<void>)[] = [];
  const urls = new Map<ControlRuntime, string>();
  beforeAll(async () => {
    server = await startTempPostgres();
  });
  afterEach(async () => {
    readers.splice(0).forEach((r) => r.close());
    for (const close of closers.splice(0)) await close();
    await Promise.all(runtimes.splice(0).map((r) => r.close()));
  });
  afterAll(() => server?.stop());

  /** Two replicas on a fresh database, sharing the control key; `b` with its own options. */
  async function replicas(bOpts: RuntimeOptions = {}) {
    const url = server.createDatabase(`s${++n}`);
    await migrate(url);
    const controlKey = generateKeyPair();
    const replica = async (opts: RuntimeOptions) => {
      const config = {
        ...loadConfig({ TRELLIS_PUBLIC_URL: "https://vpn.example.com" }, dataDir),
        databaseUrl: url,
      };
      const rt = await ControlRuntime.open(config, log, {
        controlKey,
        stream: { coalesceMs: 5 },
        changes: { checkMs: NEVER },
        ...opts,
      });
      runtimes.push(rt);
      const served = await serveNodeApi(rt);
      closers.push(served.close);
      urls.set(rt, served.url);
      return rt;
    };
    const a = await replica({});
    const b = await replica(bOpts);
    const key = await preAuthKey(a, { tags: ["tag:server"], reusable: true });
    return { a, b, key, url };
  }

  async function stream(node: TestNode): Promise<MapReader> {
    const r = await node.stream();
    readers.push(r);
    await r.next();
    return r;
  }

  /** End `rt`'s LISTEN connection from the database side, and wait until it knows. */
  async function cutListener(rt: ControlRuntime): Promise<void> {
    const bridge = rt.replication!;
    await rt.db.prisma.$queryRawUnsafe(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`,
      `trellis-events ${bridge.origin}`,
    );
    await until(() => !bridge.health().listening, "the bridge to notice");
  }

  const peer = (m: FullMap, name: string) => m.peers.find((p) => p.name === name);

  /**
   * The changes the issue names, each made through `a`, with what shows it
   * in a map of a node on `b` (which sees every node: the policy allows all).
   * `round` keeps each round's changes distinct.
   */
  function changes(a: ControlRuntime, key: string, routed: TestNode, round: number) {
    const name = `joiner-${round}`;
    const nameserver = `9.9.9.${round}`;
    const route = round === 0 ? "10.9.0.0/16" : "10.10.0.0/16";
    let version = -1;
    return [
      {
        kind: "registration",
        make: () => new TestNode(a).register(key, name).then(() => undefined),
        seen: (m: FullMap) => peer(m, name) !== undefined,
      },
      {
        kind: "route approval",
        make: async () => {
          const r = await routed.row();
          await setMachineRoutes(a, admin, r.id, {
            routes: ["10.9.0.0/16", "10.10.0.0/16"].slice(0, round + 1),
          });
        },
        seen: (m: FullMap) => peer(m, "routed")?.allowedIPs.includes(route) ?? false,
      },
      {
        kind: "settings",
        make: () => updateDnsSettings(a, admin, { nameservers: [nameserver] }).then(() => undefined),
        seen: (m: FullMap) => m.dns.nameservers[0] === nameserver,
      },
      {
        kind: "node deletion",
        make: async () => {
          const page = await listMachines(a, admin, {});
          await removeMachine(a, admin, page.items.find((x) => x.name === name)!.id);
        },
        seen: (m: FullMap) => peer(m, name) === undefined,
      },
      {
        kind: "policy save",
        make: async () => {
          version = await setPolicy(
            a,
            `{"acls":[{"action":"accept","src":["*"],"dst":["*:*"]}]} // ${round}`,
          );
        },
        seen: (m: FullMap) => m.policyVersion === version,
      },
    ];
  }

  it("a change saved through a replica whose LISTEN connection was cut reaches the other's open and new streams", async () => {
    const { a, b, key } = await replicas();
    const watcher = new TestNode(b);
    await watcher.register(key, "watcher");
    const routed = new TestNode(a);
    await routed.register(key, "routed", { routableIPs: ["10.9.0.0/16", "10.10.0.0/16"] });
    const open = await stream(watcher);
    const bridgeA = a.replication!;
    for (const c of changes(a, key, routed, 0)) {
      const returnsBefore = bridgeA.stats.reconnects;
      await cutListener(a);
      await c.make();
      const committed = performance.now();
      const cutDuringChange = !bridgeA.health().listening;
      const arrived = await arrives(open, c.seen, 5_000);
      const returned = await until(() => bridgeA.stats.reconnects > returnsBefore, "a's bridge to return");
      // Within a second of the writer's bridge returning (in fact before: NOTIFY went with the commit).
      expect(arrived - returned).toBeLessThan(1_000);
      // A new stream on b starts from a map that has it.
      const fresh = await stream(watcher);
      expect(c.seen(fresh.map)).toBe(true);
      fresh.close();
      timings.push(
        `writer's LISTEN cut (${cutDuringChange ? "still down at commit" : "back by commit"}): ${c.kind} at b's open stream ${(arrived - committed).toFixed(0)} ms after commit, ${(arrived - returned).toFixed(0)} ms from a's bridge return`,
      );
    }
    // Nothing came through b's outbox reads: the changes were heard at commit.
    expect(b.replication!.stats.replayed).toBe(0);
  });

  it("a replica whose own LISTEN connection was cut during a change applies it when its connection returns", async () => {
    const { a, b, key } = await replicas();
    const watcher = new TestNode(b);
    await watcher.register(key, "watcher");
    const open = await stream(watcher);
    const bridgeB = b.replication!;
    await cutListener(b);
    const version = await setPolicy(a, `{"acls":[{"action":"accept","src":["*"],"dst":["*:*"]}]}`);
    const returned = await until(() => bridgeB.stats.reconnects === 1, "b's bridge to return");
    const arrived = await arrives(open, (m) => m.policyVersion === version, 5_000);
    expect(arrived - returned).toBeLessThan(1_000);
    // Through the reconnect's recomputation: no outbox replay, no periodic check (an hour away).
    expect(bridgeB.stats).toMatchObject({ replayed: 0, recomputes: 1 });
    const fresh = await stream(watcher);
    expect(fresh.map.policyVersion).toBe(version);
    timings.push(
      `reader's LISTEN cut: policy at b's open stream ${(arrived - returned).toFixed(0)} ms after its bridge returned`,
    );
  });

  it("when NOTIFY never comes, every change reaches the other replica at its periodic check", async () => {
    const checkMs = 500;
    const { a, b, key } = await replicas({ changes: { checkMs } });
    const watcher = new TestNode(b);
    await watcher.register(key, "watcher");
    const routed = new TestNode(a);
    await routed.register(key, "routed", { routableIPs: ["10.9.0.0/16", "10.10.0.0/16"] });
    const open = await stream(watcher);
    const bridgeB = b.replication!;
    // b's connection stays up (nothing to reconnect) but hears nothing, like one that died silently.
    await bridgeB.deafen();
    const heard = bridgeB.stats.received;
    for (const c of changes(a, key, routed, 1)) {
      const replayed = bridgeB.stats.replayed;
      await c.make();
      const committed = performance.now();
      const arrived = await arrives(open, c.seen, checkMs + 2_000);
      expect(bridgeB.stats.replayed).toBeGreaterThan(replayed);
      const fresh = await stream(watcher);
      expect(c.seen(fresh.map)).toBe(true);
      fresh.close();
      timings.push(
        `NOTIFY never comes (check every ${checkMs} ms): ${c.kind} at b's open stream ${(arrived - committed).toFixed(0)} ms after commit`,
      );
    }
    expect(bridgeB.stats.received).toBe(heard);
    expect(bridgeB.stats.reconnects).toBe(0);
  });

  it("a new stream checks the outbox before its first map, even when nothing else would tell its replica", async () => {
    const { a, b, key } = await replicas();
    const watcher = new TestNode(b);
    await watcher.register(key, "watcher");
    const open = await stream(watcher);
    const bridgeB = b.replication!;
    await bridgeB.deafen();
    const version = await setPolicy(a, `{"acls":[{"action":"accept","src":["*"],"dst":["*:*"]}]}`);
    // No NOTIFY, no periodic check, no reconnect: the new stream's own check is all there is.
    const fresh = await stream(watcher);
    expect(fresh.map.policyVersion).toBe(version);
    expect(bridgeB.stats.replayed).toBe(1);
    // What it read is published to the streams already open, too.
    await arrives(open, (m) => m.policyVersion === version, 5_000);
    expect(bridgeB.stats.reconnects).toBe(0);
  });

  it("a database restart in the middle of a save: 503 database_unavailable everywhere, nothing half-written, then both replicas converge", async () => {
    const { a, b, key, url } = await replicas({ changes: { checkMs: 1_000 } });
    const watcher = new TestNode(b);
    await watcher.register(key, "watcher");
    const other = new TestNode(a);
    await other.register(key, "other");
    const open = await stream(watcher);
    const before = {
      versions: await a.db.prisma.policyVersion.count(),
      audit: await a.db.prisma.auditEvent.count(),
      changes: await a.db.prisma.change.count(),
    };

    // Hold the outbox's lock, so that the save waits at its last statement, everything else written.
    const holder = new pg.Client({ connectionString: url });
    holder.on("error", () => undefined);
    await holder.connect();
    await holder.query("SELECT pg_advisory_lock($1)", [OUTBOX_LOCK]);
    const save = apiRejection(setPolicy(a, `{"acls":[]}`));
    await until(async () => {
      const rows = await holder.query(`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`);
      return rows.rowCount === 1;
    }, "the save to wait for the outbox");

    server.down();
    try {
      expect(await save).toMatchObject({ status: 503, code: "database_unavailable" });

      // Every endpoint that needs the database says so, at once.
      const slowest = { what: "", ms: 0 };
      const timed = async <T>(what: string, p: () => Promise<T>) => {
        const start = performance.now();
        const out = await p();
        const ms = performance.now() - start;
        if (ms > slowest.ms) Object.assign(slowest, { what, ms });
        expect(ms, what).toBeLessThan(1_000);
        return out;
      };
      const unavailable = { status: 503, code: "database_unavailable" };
      const newcomer = new TestNode(a);
      for (const [what, call] of [
        ["register", () => newcomer.register(key, "newcomer")],
        ["map", () => other.stream()],
        ["endpoints", () => other.endpoints(["192.0.2.1:41641"])],
        ["signal", () => other.signal(watcher.key, "aGVsbG8=")],
        ["connections", () => other.connections({ connections: [] })],
        ["logout", () => other.logout()],
        ["re-register on b", () => watcher.register(undefined, "watcher")],
        ["admin: save the policy", () => setPolicy(b, `{"acls":[]}`)],
        ["admin: list machines", () => listMachines(a, admin, {})],
        ["admin: settings", () => getTailnetSettings(b, admin)],
      ] as const) {
        expect(await timed(what, () => apiRejection((call as () => Promise<unknown>)())), what).toMatchObject(
          unavailable,
        );
      }
      const verify = await timed("relay/verify", () =>
        fetch(`${urls.get(a)}/api/v1/relay/verify`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ nodeKeys: [other.key] }),
        }),
      );
      expect(verify.status).toBe(503);
      expect(verify.headers.get("retry-after")).toBe("1");
      expect(((await verify.json()) as { error: string }).error).toBe("database_unavailable");

      // Health says why, in words, without where the database is.
      const health = await timed("health", () => a.health());
      expect(health.status).toBe("degraded");
      expect(health.database.status).toBe("error");
      expect(health.database.error).toMatch(/\w{4}/);
      const port = new URL(url).port;
      expect(health.database.error).not.toContain("127.0.0.1");
      expect(health.database.error).not.toContain(port);
      await until(() => a.replication!.health().listening === false, "a to see its LISTEN connection gone");
      expect((await a.health()).database.events).toMatchObject({ listening: false });
      timings.push(
        `outage: slowest refusal ${slowest.what} in ${slowest.ms.toFixed(0)} ms; health error "${health.database.error}"`,
      );
    } finally {
      server.up();
    }
    const up = performance.now();

    // Nothing of the interrupted save remains: no version, no audit entry, no change.
    expect(await a.db.prisma.policyVersion.count()).toBe(before.versions);
    expect(await a.db.prisma.change.count()).toBe(before.changes);
    // (Only the node's own presence can have been audited meanwhile: none.)
    expect(await a.db.prisma.auditEvent.count()).toBe(before.audit);

    // A save right after the database is back reaches b's stream (still open), whether
    // b listens again yet or not: NOTIFY if it does, its reconnect if it does not.
    const early = await setPolicy(a, `{"acls":[{"action":"accept","src":["*"],"dst":["*:*"]}]} // early`);
    const saved = performance.now();
    const got = await arrives(open, (m) => m.policyVersion === early, 5_000);
    timings.push(
      `after the restart: a save ${(saved - up).toFixed(0)} ms after the database was up reached b's open stream ${(got - saved).toFixed(0)} ms later`,
    );

    // Both replicas listen again within their backoff, and a save then reaches b's stream.
    const listening = await until(async () => {
      // (Status stays "degraded" here for want of a relay: the database part is what counts.)
      const db = [(await a.health()).database, (await b.health()).database];
      return db.every((d) => d.status === "ok" && d.events?.listening && d.events.error === undefined);
    }, "both replicas' database health ok");
    const version = await setPolicy(a, `{"acls":[{"action":"accept","src":["*"],"dst":["*:*"]}]}`);
    const arrived = await arrives(open, (m) => m.policyVersion === version, 5_000);
    expect((await stream(watcher)).map.policyVersion).toBe(version);
    timings.push(
      `after the restart: both healthy ${(listening - up).toFixed(0)} ms after the database was up; a save then at b's open stream in ${(arrived - listening).toFixed(0)} ms`,
    );
    await holder.end().catch(() => undefined);
  });
});
