// Login throttling (issue 18): failed sign-ins slow down who fails, never
// lock out who knows the password. Three buckets count failures:
//
// - per account and client address ("pair"): a few free failures, then each
//   further one doubles the wait before the next attempt from that address
//   (1 s, 2 s, 4 s … up to 15 min). A stranger's failures from elsewhere
//   never touch the owner's pair;
// - per address across accounts ("address"): password spraying from one
//   place, more free failures, then the same growing delays;
// - per account from every address ("account"): a much higher mark, past
//   which each address must space its attempts on that account (at most a
//   minute apart) and loses its free failures. An address with no recent
//   attempt on the account may always try at once, so this slows a
//   distributed guesser and never locks out the owner.
//
// The state is in the database (LoginThrottle rows), so replicas agree and a
// restart keeps it. An attempt is checked and counted (as a failure, until
// it succeeds) in one transaction that holds the rows' locks, before the
// ~100 ms of scrypt: parallel guesses are counted like the same guesses in a
// row. A refusal writes nothing. Unknown and known emails take the same
// path (nothing here looks up users), and the email is stored only hashed.
import { createHash } from "node:crypto";
import type { Database, Models } from "@trellis/db";
import type { Logger } from "@trellis/log";
import { formatAddr, formatPrefix, parseSocketAddr, prefixOf } from "@trellis/proto/ip";
import { audit } from "../audit";

export interface ThrottleOptions {
  /** Failures per account and address before delays start. */
  freeAttempts: number;
  /** Failures per address, across accounts, before that address is delayed. */
  addressFreeAttempts: number;
  /** Failures per account, from every address, past which each address is slowed. */
  accountSlowAfter: number;
  /** The first delay; each further failure doubles it. */
  firstDelayMs: number;
  /** The longest delay. */
  maxDelayMs: number;
  /** The longest spacing the account-wide slowdown asks of one address. */
  accountMaxSpacingMs: number;
  /** A bucket with no attempt for this long, and no wait pending, starts over. */
  forgetAfterMs: number;
  /** Account rows one address may hold; past it the longest-quiet go. */
  maxAccountsPerAddress: number;
}

/**
 * Options from the three settings an operator has (TRELLIS_LOGIN_*): the
 * address bucket allows six times the free failures, the account mark is
 * twenty times, the account-wide spacing is at most a minute.
 */
export function throttleOptions(
  freeAttempts = 5,
  firstDelayMs = 1000,
  maxDelayMs = 15 * 60_000,
): ThrottleOptions {
  return {
    freeAttempts,
    addressFreeAttempts: 6 * freeAttempts,
    accountSlowAfter: 20 * freeAttempts,
    firstDelayMs,
    maxDelayMs,
    accountMaxSpacingMs: Math.min(maxDelayMs, 60_000),
    forgetAfterMs: 24 * 3600_000,
    maxAccountsPerAddress: 100,
  };
}

export const DEFAULT_THROTTLE: ThrottleOptions = throttleOptions();

// --- The rules, without a database -----------------------------------------------

export type BucketKind = "pair" | "address" | "account";

/** One bucket as the rules see it; times in ms. */
export interface Bucket {
  failures: number;
  /** When the last counted attempt started; null: none. */
  lastAt: number | null;
  /** Attempts wait until then (an account bucket: addresses are slowed until then). */
  waitUntil: number;
  auditedAt: number | null;
}

export const EMPTY_BUCKET: Bucket = { failures: 0, lastAt: null, waitUntil: 0, auditedAt: null };

export interface Buckets {
  pair: Bucket;
  address: Bucket;
  account: Bucket;
}

/** The wait after `failures` failures in a bucket that allows `free` of them. */
export function delayAfter(failures: number, free: number, o: ThrottleOptions): number {
  if (failures < free) return 0;
  return Math.min(o.maxDelayMs, o.firstDelayMs * 2 ** Math.min(failures - free, 40));
}

/** The spacing between one address's attempts while the account is slowed (doubling every `freeAttempts`). */
export function accountSpacing(failures: number, o: ThrottleOptions): number {
  if (failures < o.accountSlowAfter) return 0;
  const steps = Math.floor((failures - o.accountSlowAfter) / o.freeAttempts);
  return Math.min(o.accountMaxSpacingMs, o.firstDelayMs * 2 ** Math.min(steps, 40));
}

/** The bucket as of `now`: one quiet for `forgetAfterMs` with no wait pending starts over. */
export function current(b: Bucket | null, now: number, o: ThrottleOptions): Bucket {
  if (!b || b.failures <= 0 || b.lastAt === null) return EMPTY_BUCKET;
  if (b.lastAt <= now - o.forgetAfterMs && b.waitUntil <= now) return EMPTY_BUCKET;
  return b;
}

/** When a bucket holding `failures` (its last attempt at `lastAt`) stops holding attempts back. */
export function waitUntilOf(kind: BucketKind, failures: number, lastAt: number, o: ThrottleOptions): number {
  switch (kind) {
    case "pair":
      return lastAt + delayAfter(failures, o.freeAttempts, o);
    case "address":
      return lastAt + delayAfter(failures, o.addressFreeAttempts, o);
    case "account":
      return failures >= o.accountSlowAfter ? lastAt + o.forgetAfterMs : lastAt;
  }
}

/** Whether a bucket with `failures` is holding attempts back (the episode worth an audit entry). */
export function isThrottling(kind: BucketKind, failures: number, o: ThrottleOptions): boolean {
  const mark = { pair: o.freeAttempts, address: o.addressFreeAttempts, account: o.accountSlowAfter }[kind];
  return failures >= mark;
}

export type Decision =
  | {
      allowed: true;
      /** The buckets with this attempt counted as a failure (what is stored now). */
      next: Buckets;
      /** Should this attempt fail: failures left before a delay starts, and the wait it starts (ms). */
      ifFailed: { remaining: number; waitMs: number };
    }
  | {
      allowed: false;
      /** When an attempt may start again. */
      retryAt: number;
      /** Which bucket holds it back. */
      heldBy: BucketKind;
    };

/** May an attempt start at `now`, and what the buckets become if it does. */
export function decide(stored: Buckets, now: number, o: ThrottleOptions): Decision {
  const pair = current(stored.pair, now, o);
  const address = current(stored.address, now, o);
  const account = current(stored.account, now, o);
  const spacing =
    pair.lastAt !== null && account.failures >= o.accountSlowAfter
      ? pair.lastAt + accountSpacing(account.failures, o)
      : 0;
  const holds: [BucketKind, number][] = [
    ["pair", pair.waitUntil],
    ["address", address.waitUntil],
    ["account", spacing],
  ];
  const [heldBy, retryAt] = holds.reduce((a, b) => (b[1] > a[1] ? b : a));
  if (retryAt > now) return { allowed: false, retryAt, heldBy };
  const counted = (kind: BucketKind, b: Bucket): Bucket => {
    const failures = b.failures + 1;
    return {
      failures,
      lastAt: now,
      waitUntil: waitUntilOf(kind, failures, now, o),
      auditedAt: b.auditedAt,
    };
  };
  const next = {
    pair: counted("pair", pair),
    address: counted("address", address),
    account: counted("account", account),
  };
  const slowed = next.account.failures >= o.accountSlowAfter;
  const waitUntil = Math.max(
    next.pair.waitUntil,
    next.address.waitUntil,
    slowed ? now + accountSpacing(next.account.failures, o) : 0,
  );
  const remaining = slowed
    ? 0
    : Math.max(
        0,
        Math.min(o.freeAttempts - next.pair.failures, o.addressFreeAttempts - next.address.failures),
      );
  return { allowed: true, next, ifFailed: { remaining, waitMs: waitUntil - now } };
}

// --- Keys ---------------------------------------------------------------------------

/** An email as the throttle keys it: SHA-256 of its normalized form, 32 hex digits. */
export function accountKey(email: string): string {
  return createHash("sha256").update(email.trim().toLowerCase()).digest("hex").slice(0, 32);
}

/**
 * A client address as the throttle keys it: IPv4 as it is (an IPv4-mapped
 * IPv6 address as IPv4), IPv6 as its /64 (one subscriber's usual share);
 * anything else bounded text.
 */
export function addressKey(address: string): string {
  const a = parseSocketAddr(address);
  if (!a) return address.slice(0, 64) || "unknown";
  return a.v === 4 ? formatAddr(a) : formatPrefix(prefixOf(a, 64));
}

// --- The database -----------------------------------------------------------------

type Row = Models.LoginThrottle;
type Tx = Parameters<Parameters<Database["prisma"]["$transaction"]>[0]>[0];

function bucketOf(row: Row | null | undefined): Bucket {
  if (!row || row.failures <= 0) return EMPTY_BUCKET;
  return {
    failures: row.failures,
    lastAt: row.lastAt.getTime(),
    waitUntil: row.waitUntil.getTime(),
    auditedAt: row.auditedAt?.getTime() ?? null,
  };
}

function rowData(b: Bucket) {
  return {
    failures: b.failures,
    lastAt: new Date(b.lastAt ?? 0),
    waitUntil: new Date(b.waitUntil),
    auditedAt: b.auditedAt === null ? null : new Date(b.auditedAt),
  };
}

interface Keys {
  account: string;
  address: string;
  rows: Record<BucketKind, string>;
}

function keysOf(email: string, address: string): Keys {
  const account = accountKey(email);
  const addr = addressKey(address);
  return {
    account,
    address: addr,
    rows: { pair: `pair:${account}|${addr}`, address: `address:${addr}`, account: `account:${account}` },
  };
}

/** An attempt `begin` let through: hand it to `succeeded` or `failed`. */
export interface AllowedAttempt {
  allowed: true;
  keys: Keys;
  at: number;
  next: Buckets;
  ifFailed: { remaining: number; waitMs: number };
}

export type Attempt =
  AllowedAttempt | { allowed: false; retryAt: number; retryAfterMs: number; heldBy: BucketKind };

/** The throttle state of one account, as admins see it. */
export interface AccountThrottle {
  /** Until when the longest of its holds lasts. */
  until: Date;
  /** Addresses (an IPv6 client's /64) currently held back from this account. */
  addresses: string[];
  /** Failures from every address passed the account-wide mark: each address is slowed. */
  accountWide: boolean;
}

/** Errors worth running a login's transaction again for: a race on a new row, a conflict, a deadlock. */
function retryable(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  if (code === "P2002" || code === "P2034") return true;
  return /deadlock|could not serialize|write conflict/i.test(err instanceof Error ? err.message : "");
}

const KINDS: readonly BucketKind[] = ["pair", "address", "account"];
const TX = { maxWait: 10_000, timeout: 10_000 };

export class LoginThrottle {
  private readonly pending = new Set<Promise<void>>();
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(
    private readonly db: Database,
    readonly opts: ThrottleOptions = DEFAULT_THROTTLE,
    private readonly log?: Logger,
    /** The clock attempts are timed by (tests move it). */
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * Check an attempt and, if it may go ahead, count it as a failure in the
   * same step. Call before checking the password.
   */
  async begin(email: string, address: string, now = this.clock()): Promise<Attempt> {
    const keys = keysOf(email, address);
    // A cheap look first: a refusal writes nothing, so refused requests
    // (no scrypt, so cheap to send) cannot grow the table.
    const seen = await this.read(this.db.prisma, keys);
    const first = decide(seen, now, this.opts);
    if (!first.allowed) return this.refusal(first, now);
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.db.prisma.$transaction((tx) => this.count(tx, keys, now), TX);
        if (result.allowed && result.next.pair.failures === 1) await this.trimAddress(keys, now);
        return result;
      } catch (err) {
        if (attempt < 5 && retryable(err)) continue;
        throw err;
      }
    }
  }

  private refusal(d: { retryAt: number; heldBy: BucketKind }, now: number): Attempt {
    return { allowed: false, retryAt: d.retryAt, retryAfterMs: d.retryAt - now, heldBy: d.heldBy };
  }

  private async read(client: Tx | Database["prisma"], keys: Keys): Promise<Buckets> {
    const rows = await client.loginThrottle.findMany({ where: { key: { in: Object.values(keys.rows) } } });
    const byKey = new Map(rows.map((r) => [r.key, r]));
    return {
      pair: bucketOf(byKey.get(keys.rows.pair)),
      address: bucketOf(byKey.get(keys.rows.address)),
      account: bucketOf(byKey.get(keys.rows.account)),
    };
  }

  /**
   * In a transaction: take the three rows' locks (creating missing rows; in
   * one order, so two logins cannot deadlock), decide on what they hold
   * now, and store the attempt.
   */
  private async count(tx: Tx, keys: Keys, now: number): Promise<Attempt> {
    const locked: Partial<Record<BucketKind, Row>> = {};
    const order = [...KINDS].sort((a, b) => (keys.rows[a] < keys.rows[b] ? -1 : 1));
    for (const kind of order) {
      locked[kind] = await tx.loginThrottle.upsert({
        where: { key: keys.rows[kind] },
        create: {
          key: keys.rows[kind],
          kind,
          account: kind === "address" ? null : keys.account,
          address: kind === "account" ? null : keys.address,
          failures: 0,
          lastAt: new Date(now),
          waitUntil: new Date(now),
        },
        // A write, so the row stays locked until the transaction ends (PostgreSQL).
        update: { kind },
      });
    }
    const d = decide(
      { pair: bucketOf(locked.pair), address: bucketOf(locked.address), account: bucketOf(locked.account) },
      now,
      this.opts,
    );
    if (!d.allowed) return this.refusal(d, now);
    for (const kind of order) {
      await tx.loginThrottle.update({ where: { key: keys.rows[kind] }, data: rowData(d.next[kind]) });
    }
    return { allowed: true, keys, at: now, next: d.next, ifFailed: d.ifFailed };
  }

  /** An address holds at most `maxAccountsPerAddress` account rows: the longest-quiet go. */
  private async trimAddress(keys: Keys, now: number): Promise<void> {
    const cap = this.opts.maxAccountsPerAddress;
    const extra = await this.db.prisma.loginThrottle.findMany({
      where: { address: keys.address, kind: "pair", lastAt: { lt: new Date(now) } },
      orderBy: { lastAt: "desc" },
      skip: cap - 1,
      select: { key: true },
    });
    if (extra.length) {
      await this.db.prisma.loginThrottle.deleteMany({ where: { key: { in: extra.map((r) => r.key) } } });
    }
  }

  /**
   * The password was right: the account and address forget their failures
   * together (the pair row goes), and the other buckets take back this
   * attempt's count — no more, or signing in with an account of one's own
   * would wipe an address's record of guessing at others.
   */
  async succeeded(attempt: AllowedAttempt): Promise<void> {
    const { keys } = attempt;
    for (let n = 1; ; n++) {
      try {
        await this.db.prisma.$transaction(async (tx) => {
          for (const kind of ["account", "address"] as const) {
            const row = await tx.loginThrottle.updateMany({
              where: { key: keys.rows[kind], failures: { gt: 0 } },
              data: { failures: { decrement: 1 } },
            });
            if (row.count === 0) continue;
            const b = bucketOf(await tx.loginThrottle.findUnique({ where: { key: keys.rows[kind] } }));
            if (b.lastAt === null) continue;
            await tx.loginThrottle.update({
              where: { key: keys.rows[kind] },
              data: { waitUntil: new Date(waitUntilOf(kind, b.failures, b.lastAt, this.opts)) },
            });
          }
          await tx.loginThrottle.deleteMany({ where: { key: keys.rows.pair } });
        }, TX);
        return;
      } catch (err) {
        if (n < 5 && retryable(err)) continue;
        throw err;
      }
    }
  }

  /**
   * The password was wrong (the attempt is already counted). When this
   * failure starts a bucket's delays, the audit log says so once per
   * episode: for an address always, for an account only if it exists
   * (`userId`). Runs in the background, so the answer's timing does not
   * depend on whether the account exists; `settled()` waits for it.
   */
  failed(attempt: AllowedAttempt, userId: string | null): void {
    const p = this.auditEpisodes(attempt, userId).catch((err: unknown) =>
      this.log?.warn({ err }, "could not record login throttling in the audit log"),
    );
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  private async auditEpisodes(attempt: AllowedAttempt, userId: string | null): Promise<void> {
    const { keys, next } = attempt;
    const now = new Date(attempt.at);
    for (const kind of KINDS) {
      const b = next[kind];
      if (!isThrottling(kind, b.failures, this.opts) || b.auditedAt !== null) continue;
      if (kind !== "address" && userId === null) continue;
      // Claimed once, whichever replica or request gets here first.
      const claimed = await this.db.prisma.loginThrottle.updateMany({
        where: { key: keys.rows[kind], auditedAt: null },
        data: { auditedAt: now },
      });
      if (claimed.count === 0) continue;
      const until = new Date(b.waitUntil).toISOString();
      if (kind === "address") {
        await audit(this.db.prisma, {
          actor: "system",
          action: "address.login_throttled",
          target: `address:${keys.address}`,
          detail: { failures: b.failures, until },
        });
      } else {
        await audit(this.db.prisma, {
          actor: "system",
          action: "user.login_throttled",
          target: `user:${userId}`,
          detail:
            kind === "pair"
              ? { scope: "address", address: keys.address, failures: b.failures, until }
              : { scope: "account", failures: b.failures, until },
        });
      }
    }
  }

  /** Wait for the audit entries of failures so far (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
  }

  /**
   * Delete rows that no longer hold anything: quiet for `forgetAfterMs`
   * with no wait pending, or left with no failures. Returns how many.
   */
  async prune(now = this.clock()): Promise<number> {
    const { count } = await this.db.prisma.loginThrottle.deleteMany({
      where: {
        OR: [
          { failures: { lte: 0 } },
          { lastAt: { lt: new Date(now - this.opts.forgetAfterMs) }, waitUntil: { lte: new Date(now) } },
        ],
      },
    });
    return count;
  }

  /** Prune now and then every `intervalMs` (unref'd), until `close()`. */
  startPruning(intervalMs = 10 * 60_000): void {
    if (this.timer) return;
    const run = () =>
      void this.prune().catch((err: unknown) => this.log?.warn({ err }, "pruning the login throttle failed"));
    run();
    this.timer = setInterval(run, intervalMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.settled();
  }
}

/** The throttle holding each of `emails` back now (those held back only), by email as given. */
export async function accountThrottles(
  db: Database,
  emails: readonly string[],
  now = new Date(),
): Promise<Map<string, AccountThrottle>> {
  const byKey = new Map(emails.map((e) => [accountKey(e), e]));
  const out = new Map<string, AccountThrottle>();
  if (byKey.size === 0) return out;
  const rows = await db.prisma.loginThrottle.findMany({
    where: { account: { in: [...byKey.keys()] }, kind: { in: ["pair", "account"] }, waitUntil: { gt: now } },
    orderBy: { waitUntil: "desc" },
  });
  for (const r of rows) {
    const email = byKey.get(r.account!)!;
    const t = out.get(email) ?? { until: r.waitUntil, addresses: [], accountWide: false };
    if (r.kind === "account") t.accountWide = true;
    else if (r.address !== null && t.addresses.length < 20) t.addresses.push(r.address);
    if (r.waitUntil > t.until) t.until = r.waitUntil;
    out.set(email, t);
  }
  return out;
}

/**
 * Forget every failure counted against `email` (its rows from every
 * address); returns how many rows held failures, and what held it back.
 */
export async function clearAccountThrottle(
  client: Pick<Tx, "loginThrottle">,
  email: string,
  now = new Date(),
): Promise<{ cleared: number; before: AccountThrottle | null }> {
  const account = accountKey(email);
  const rows = await client.loginThrottle.findMany({ where: { account } });
  const held = rows.filter((r) => r.waitUntil > now && r.kind !== "address");
  const before: AccountThrottle | null = held.length
    ? {
        until: new Date(Math.max(...held.map((r) => r.waitUntil.getTime()))),
        addresses: held.flatMap((r) => (r.kind === "pair" && r.address !== null ? [r.address] : [])),
        accountWide: held.some((r) => r.kind === "account"),
      }
    : null;
  await client.loginThrottle.deleteMany({ where: { account } });
  return { cleared: rows.filter((r) => r.failures > 0).length, before };
}
