import { describe, expect, it } from "vitest";
import type { Database } from "@trellis/db";
import { ControlError } from "../errors";
import { hashPassword } from "../password";
import { PROVIDERS, testDatabases } from "../testing/db";
import { actorOf, adminContext, createUser, rejection } from "../admin/testing";
import { clearLoginThrottle, getUser, listUsers } from "../admin/users";
import { LoginError, verifyLogin } from "./login";
import {
  EMPTY_BUCKET,
  LoginThrottle,
  accountKey,
  addressKey,
  decide,
  throttleOptions,
  type Attempt,
  type Bucket,
  type BucketKind,
  type Buckets,
  type ThrottleOptions,
} from "./throttle";

// The rules on their own: an in-memory table of buckets and a clock the
// test moves. No database, no sleeping.
class Rules {
  readonly rows = new Map<string, Bucket>();
  constructor(readonly o: ThrottleOptions) {}

  private keys(account: string, address: string): Record<BucketKind, string> {
    return { pair: `p:${account}|${address}`, address: `s:${address}`, account: `a:${account}` };
  }

  private read(k: Record<BucketKind, string>): Buckets {
    const get = (key: string) => this.rows.get(key) ?? EMPTY_BUCKET;
    return { pair: get(k.pair), address: get(k.address), account: get(k.account) };
  }

  /** A failed attempt at `now`: what the caller would be told. */
  fail(account: string, address: string, now: number) {
    const k = this.keys(account, address);
    const d = decide(this.read(k), now, this.o);
    if (!d.allowed) return { refused: true as const, retryAfterMs: d.retryAt - now, heldBy: d.heldBy };
    for (const kind of ["pair", "address", "account"] as const) this.rows.set(k[kind], d.next[kind]);
    return { refused: false as const, ...d.ifFailed };
  }

  /** Whether an attempt could start at `now`, and if not for how long. */
  waitMs(account: string, address: string, now: number): number {
    const d = decide(this.read(this.keys(account, address)), now, this.o);
    return d.allowed ? 0 : d.retryAt - now;
  }
}

const o = throttleOptions(5, 1000, 15 * 60_000);

describe("login throttle rules", () => {
  it("counts down the free failures of an account and address, then doubles the delay up to the cap", () => {
    const r = new Rules(o);
    let now = 1_000_000;
    const told = [];
    for (let i = 0; i < 5; i++) told.push(r.fail("ann", "1.1.1.1", now));
    expect(told.map((t) => (t.refused ? "refused" : t.remaining))).toEqual([4, 3, 2, 1, 0]);
    expect(told.map((t) => (t.refused ? -1 : t.waitMs))).toEqual([0, 0, 0, 0, 1000]);
    // Each failure once its wait is over starts a wait twice as long, up to 15 minutes.
    const waits: number[] = [];
    for (let i = 0; i < 14; i++) {
      now += r.waitMs("ann", "1.1.1.1", now);
      const t = r.fail("ann", "1.1.1.1", now);
      expect(t.refused).toBe(false);
      if (!t.refused) waits.push(t.waitMs);
    }
    expect(waits.slice(0, 10)).toEqual([2, 4, 8, 16, 32, 64, 128, 256, 512, 900].map((s) => s * 1000));
    expect(new Set(waits.slice(9))).toEqual(new Set([900_000]));
  });

  it("refuses an attempt during the wait without counting it, and says how long is left", () => {
    const r = new Rules(o);
    for (let i = 0; i < 6; i++) r.fail("ann", "1.1.1.1", 10_000 + i * 1000);
    const before = JSON.stringify([...r.rows]);
    expect(r.fail("ann", "1.1.1.1", 15_500)).toEqual({ refused: true, retryAfterMs: 1500, heldBy: "pair" });
    expect(JSON.stringify([...r.rows])).toBe(before);
    expect(r.waitMs("ann", "1.1.1.1", 17_000)).toBe(0);
  });

  it("a stranger's failures from another address never hold back the owner's address", () => {
    const r = new Rules(o);
    let now = 0;
    for (let i = 0; i < 40; i++) {
      now += r.waitMs("ann", "6.6.6.6", now);
      r.fail("ann", "6.6.6.6", now);
    }
    expect(r.waitMs("ann", "6.6.6.6", now)).toBeGreaterThan(0);
    expect(r.waitMs("ann", "1.1.1.1", now)).toBe(0);
    // The owner still has every free attempt of their own address.
    expect(r.fail("ann", "1.1.1.1", now)).toMatchObject({ refused: false, remaining: 4, waitMs: 0 });
  });

  it("password spraying: one address failing across many accounts is delayed for every account", () => {
    const r = new Rules(o);
    const told = [];
    for (let i = 0; i < o.addressFreeAttempts; i++) told.push(r.fail(`user${i}`, "9.9.9.9", 100));
    expect(told.at(-2)).toMatchObject({ remaining: 1, waitMs: 0 });
    expect(told.at(-1)).toMatchObject({ remaining: 0, waitMs: 1000 });
    expect(r.fail("fresh", "9.9.9.9", 100)).toMatchObject({ refused: true, heldBy: "address" });
    // Another address is not concerned.
    expect(r.waitMs("fresh", "8.8.8.8", 100)).toBe(0);
  });

  it("past the account-wide mark every address is slowed, never locked: a fresh address may try at once", () => {
    const r = new Rules(o);
    let now = 0;
    // A distributed guesser: each address stays within its own free failures.
    for (let i = 0; i < o.accountSlowAfter; i++) r.fail("ann", `10.0.${i >> 8}.${i & 255}`, now++);
    expect(r.waitMs("ann", "10.0.0.1", now)).toBeGreaterThan(0);
    expect(r.fail("ann", "10.0.0.1", now)).toMatchObject({ refused: true, heldBy: "account" });
    // The owner's address, never used: at once, then its next attempt spaced.
    expect(r.fail("ann", "192.0.2.7", now)).toMatchObject({ refused: false, remaining: 0 });
    const wait = r.waitMs("ann", "192.0.2.7", now);
    expect(wait).toBeGreaterThan(0);
    // However long the attack goes on, the spacing stays at most a minute.
    for (let i = 0; i < 2000; i++) {
      const a = `10.1.${i >> 8}.${i & 255}`;
      now += r.waitMs("ann", a, now);
      r.fail("ann", a, now);
    }
    expect(r.waitMs("ann", "192.0.2.7", now)).toBeLessThanOrEqual(o.accountMaxSpacingMs);
    expect(r.waitMs("ann", "203.0.113.1", now)).toBe(0);
  });

  it("a bucket quiet for a day with nothing pending starts over; one still waiting does not", () => {
    const r = new Rules(o);
    for (let i = 0; i < 5; i++) r.fail("ann", "1.1.1.1", 0);
    expect(r.fail("ann", "1.1.1.1", o.forgetAfterMs + 1)).toMatchObject({ refused: false, remaining: 4 });
    const long = new Rules({ ...o, maxDelayMs: 2 * o.forgetAfterMs, firstDelayMs: 2 * o.forgetAfterMs });
    for (let i = 0; i < 5; i++) long.fail("ann", "1.1.1.1", 0);
    expect(long.waitMs("ann", "1.1.1.1", o.forgetAfterMs + 1)).toBeGreaterThan(0);
  });

  it("keys: an IPv6 client by its /64, mapped IPv4 as IPv4; the email only hashed, case and spaces aside", () => {
    expect(addressKey("2001:db8:1:2:aaaa::1")).toBe(addressKey("2001:db8:1:2:bbbb::9"));
    expect(addressKey("2001:db8:1:2::1")).toBe("2001:db8:1:2::/64");
    expect(addressKey("2001:db8:1:3::1")).not.toBe(addressKey("2001:db8:1:2::1"));
    expect(addressKey("::ffff:192.0.2.1")).toBe("192.0.2.1");
    expect(addressKey("x".repeat(500))).toHaveLength(64);
    expect(accountKey(" Ann@Example.com ")).toBe(accountKey("ann@example.com"));
    expect(accountKey("ann@example.com")).toMatch(/^[0-9a-f]{32}$/);
  });
});

// --- In the database ---------------------------------------------------------------

/** A clock the test moves. */
function clock(start = Date.UTC(2026, 0, 1)) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

async function user(db: Database, email: string, role: string, password?: string) {
  return db.prisma.user.create({
    data: {
      email,
      name: email.split("@")[0]!,
      role,
      passwordHash: password ? await hashPassword(password) : null,
    },
  });
}

async function login(db: Database, t: LoginThrottle, email: string, password: string, address: string) {
  try {
    await verifyLogin(db, t, email, password, address);
    return { ok: true as const };
  } catch (err) {
    if (!ControlError.is(err)) throw err;
    return { ok: false as const, status: err.status, code: err.code, throttle: LoginError.throttleOf(err) };
  }
}

const PASSWORD = "correct horse battery";

for (const { provider, skip } of PROVIDERS) {
  describe.skipIf(skip)(`login throttle on ${provider}`, () => {
    const dbs = testDatabases(provider);
    const small = throttleOptions(3, 60_000, 15 * 60_000);

    it("a stranger's failures from elsewhere do not stop the owner's right password; the state outlives the process", async () => {
      const db = await dbs.open();
      await user(db, "ann@example.com", "member", PASSWORD);
      const c = clock();
      const t = new LoginThrottle(db, small, undefined, c.now);
      const told = [];
      for (let i = 0; i < 4; i++)
        told.push(await login(db, t, "ann@example.com", `guess ${i}`, "203.0.113.7"));
      expect(told.map((x) => [x.ok ? 200 : x.status, !x.ok && x.throttle])).toEqual([
        [401, { remaining: 2, retryAfterMs: 0 }],
        [401, { remaining: 1, retryAfterMs: 0 }],
        [401, { remaining: 0, retryAfterMs: 60_000 }],
        [429, { remaining: 0, retryAfterMs: 60_000 }],
      ]);
      // The right password from the stranger's address waits too …
      expect(await login(db, t, "ann@example.com", PASSWORD, "203.0.113.7")).toMatchObject({ status: 429 });
      // … but the owner's own address gets straight in.
      expect(await login(db, t, "ann@example.com", PASSWORD, "198.51.100.9")).toEqual({ ok: true });
      // A new process (a restart, another replica) reads the same state.
      const again = new LoginThrottle(db, small, undefined, c.now);
      expect(await login(db, again, "ann@example.com", PASSWORD, "203.0.113.7")).toMatchObject({
        status: 429,
        throttle: { retryAfterMs: 60_000 },
      });
      c.advance(60_000);
      expect(await login(db, again, "ann@example.com", PASSWORD, "203.0.113.7")).toEqual({ ok: true });
      await t.close();
    });

    it("known and unknown emails are throttled alike, and the email is not stored", async () => {
      const db = await dbs.open();
      await user(db, "bob@example.com", "member", PASSWORD);
      const t = new LoginThrottle(db, small, undefined, clock().now);
      const run = async (email: string, address: string) => {
        const out = [];
        for (let i = 0; i < 5; i++) {
          const r = await login(db, t, email, `wrong ${i}`, address);
          out.push(r.ok ? "ok" : [r.status, r.code, r.throttle]);
        }
        return out;
      };
      expect(await run("bob@example.com", "10.0.0.1")).toEqual(await run("nobody@example.com", "10.0.0.2"));
      const rows = await db.prisma.loginThrottle.findMany();
      expect(JSON.stringify(rows)).not.toMatch(/example\.com/);
      await t.close();
    });

    it("parallel guesses are counted like sequential ones: only the free attempts reach the password check", async () => {
      const db = await dbs.open();
      await user(db, "par@example.com", "member", PASSWORD);
      const t = new LoginThrottle(db, small, undefined, clock().now);
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) => login(db, t, "par@example.com", `guess number ${i}`, "3.3.3.3")),
      );
      const statuses = results.map((r) => (r.ok ? 200 : r.status));
      expect(statuses.filter((s) => s === 401)).toHaveLength(3);
      expect(statuses.filter((s) => s === 429)).toHaveLength(5);
      await t.close();
    });

    it("a success forgets the account's failures from that address, and takes back only its own count elsewhere", async () => {
      const db = await dbs.open();
      await user(db, "cy@example.com", "member", PASSWORD);
      const t = new LoginThrottle(db, small, undefined, clock().now);
      for (let i = 0; i < 2; i++) await login(db, t, `other${i}@example.com`, "x-wrong-x", "4.4.4.4");
      await login(db, t, "cy@example.com", "x-wrong-x", "4.4.4.4");
      expect(await login(db, t, "cy@example.com", PASSWORD, "4.4.4.4")).toEqual({ ok: true });
      const rows = await db.prisma.loginThrottle.findMany({ orderBy: { key: "asc" } });
      expect(
        rows.find((r) => r.kind === "pair" && r.account === accountKey("cy@example.com")),
      ).toBeUndefined();
      // The address keeps the failures made on other accounts and on this one.
      expect(rows.find((r) => r.kind === "address")?.failures).toBe(3);
      expect(await login(db, t, "cy@example.com", "x-wrong-x", "4.4.4.4")).toMatchObject({
        throttle: { remaining: 2 },
      });
      await t.close();
    });

    it("the audit log says once per episode that an account or address is throttled, not once per guess", async () => {
      const db = await dbs.open();
      const dee = await user(db, "dee@example.com", "member", PASSWORD);
      const c = clock();
      const t = new LoginThrottle(db, small, undefined, c.now);
      for (let i = 0; i < 8; i++) {
        c.advance(15 * 60_000);
        await login(db, t, "dee@example.com", `guess ${i}`, "5.5.5.5");
        await login(db, t, "ghost@example.com", `guess ${i}`, "5.5.5.6");
      }
      await t.settled();
      const entries = await db.prisma.auditEvent.findMany({ orderBy: { at: "asc" } });
      expect(entries.map((e) => [e.actor, e.action, e.target])).toEqual([
        ["system", "user.login_throttled", `user:${dee.id}`],
      ]);
      expect(JSON.parse(entries[0]!.detail)).toMatchObject({
        scope: "address",
        address: "5.5.5.5",
        failures: 3,
      });
      // Spraying from one address: one entry for the address.
      for (let i = 0; i < small.addressFreeAttempts; i++) {
        await login(db, t, `spray${i}@example.com`, "x-wrong-x", "7.7.7.7");
      }
      await t.settled();
      const spray = await db.prisma.auditEvent.findMany({ where: { action: "address.login_throttled" } });
      expect(spray.map((e) => e.target)).toEqual(["address:7.7.7.7"]);
      await t.close();
    });

    it("admins see who is held back and clear it, audited; auditors may look but not clear", async () => {
      const db = await dbs.open();
      const ctx = adminContext(db);
      const admin = await createUser(db, "admin", "root@example.com");
      const auditor = await createUser(db, "auditor", "aud@example.com");
      await user(db, "eve@example.com", "member", PASSWORD);
      const eve = await db.prisma.user.findUniqueOrThrow({ where: { email: "eve@example.com" } });
      // Real time here: the admin functions read the clock themselves, and the wait is long.
      const t = new LoginThrottle(db, small);
      for (let i = 0; i < 3; i++) await login(db, t, "eve@example.com", `guess ${i}`, "2001:db8:5::1");
      const info = await getUser(ctx, actorOf(admin), eve.id);
      expect(info.loginThrottle).toMatchObject({ addresses: ["2001:db8:5::/64"], accountWide: false });
      expect(Date.parse(info.loginThrottle!.until)).toBeGreaterThan(Date.now() + 30_000);
      const listed = await listUsers(ctx, actorOf(auditor), {});
      expect(listed.items.find((u) => u.email === "eve@example.com")?.loginThrottle).not.toBeNull();
      expect(listed.items.find((u) => u.email === "root@example.com")?.loginThrottle).toBeNull();

      expect((await rejection(clearLoginThrottle(ctx, actorOf(auditor), eve.id))).status).toBe(403);
      expect((await rejection(clearLoginThrottle(ctx, actorOf(admin), "nobody"))).status).toBe(404);
      expect((await clearLoginThrottle(ctx, actorOf(admin), eve.id)).loginThrottle).toBeNull();
      expect(await login(db, t, "eve@example.com", PASSWORD, "2001:db8:5::2")).toEqual({ ok: true });
      const cleared = await db.prisma.auditEvent.findMany({ where: { action: "user.login_unthrottled" } });
      expect(cleared).toHaveLength(1);
      expect(cleared[0]).toMatchObject({ actor: `user:${admin.id}`, target: `user:${eve.id}` });
      expect(JSON.parse(cleared[0]!.detail)).toMatchObject({
        before: { addresses: ["2001:db8:5::/64"], accountWide: false },
      });
      // Nothing left to clear: no second entry.
      await clearLoginThrottle(ctx, actorOf(admin), eve.id);
      expect(await db.prisma.auditEvent.count({ where: { action: "user.login_unthrottled" } })).toBe(1);
      await t.close();
    });

    it("bounded: quiet rows are pruned, and an address holds a bounded number of accounts", async () => {
      const db = await dbs.open();
      const c = clock();
      const t = new LoginThrottle(db, { ...small, maxAccountsPerAddress: 4 }, undefined, c.now);
      for (let i = 0; i < small.addressFreeAttempts; i++) {
        c.advance(1000);
        const a: Attempt = await t.begin(`name${i}@example.com`, "8.8.8.8");
        expect(a.allowed).toBe(true);
      }
      const pairs = await db.prisma.loginThrottle.findMany({ where: { kind: "pair" } });
      expect(pairs).toHaveLength(4);
      // Refused attempts write nothing: the spraying address is waiting now.
      const before = await db.prisma.loginThrottle.count();
      for (let i = 0; i < 20; i++)
        expect((await t.begin(`more${i}@example.com`, "8.8.8.8")).allowed).toBe(false);
      expect(await db.prisma.loginThrottle.count()).toBe(before);
      // A day later with nothing pending, everything goes.
      expect(await t.prune()).toBe(0);
      c.advance(small.forgetAfterMs + small.maxDelayMs);
      expect(await t.prune()).toBe(before);
      expect(await db.prisma.loginThrottle.count()).toBe(0);
      await t.close();
    });
  });
}
