// Login throttling: attempts are counted per account and per client address
// in a sliding window; while either is over its limit, logins are refused
// before the password is even checked (so a guesser also cannot measure the
// KDF). An attempt is counted when it starts, before the ~100 ms of scrypt,
// and synchronously with the check (`begin`): parallel guesses cannot all
// pass the check before the first one is counted. A successful login takes
// its attempt back and clears the account's count.
// Per process: replicas each keep their own counts, which multiplies the
// allowance by the number of replicas — still bounded, and documented.

export interface RateLimitOptions {
  windowMs: number;
  maxPerAccount: number;
  maxPerAddress: number;
  /** Bound on tracked keys, so a flood of distinct names cannot exhaust memory. */
  maxKeys: number;
}

export const DEFAULT_LOGIN_LIMITS: RateLimitOptions = {
  windowMs: 15 * 60_000,
  maxPerAccount: 10,
  maxPerAddress: 50,
  maxKeys: 10_000,
};

export class LoginRateLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly opts: RateLimitOptions = DEFAULT_LOGIN_LIMITS) {}

  private recent(key: string, now: number): number[] {
    const list = (this.failures.get(key) ?? []).filter((t) => now - t < this.opts.windowMs);
    if (list.length) this.failures.set(key, list);
    else this.failures.delete(key);
    return list;
  }

  private keys(account: string, address: string): [string, number][] {
    return [
      [`a:${account.toLowerCase()}`, this.opts.maxPerAccount],
      [`ip:${address}`, this.opts.maxPerAddress],
    ];
  }

  /** Milliseconds until a login may be tried again; 0 when allowed now. */
  retryAfterMs(account: string, address: string, now = Date.now()): number {
    let wait = 0;
    for (const [key, max] of this.keys(account, address)) {
      const list = this.recent(key, now);
      if (list.length >= max) wait = Math.max(wait, list[list.length - max]! + this.opts.windowMs - now);
    }
    return wait;
  }

  /**
   * Start a login attempt: 0 when it may go ahead (it is counted now, as a
   * failure until `recordSuccess` says otherwise), else the milliseconds to
   * wait (nothing is counted). Call before checking the password.
   */
  begin(account: string, address: string, now = Date.now()): number {
    const wait = this.retryAfterMs(account, address, now);
    if (wait > 0) return wait;
    this.recordFailure(account, address, now);
    return 0;
  }

  recordFailure(account: string, address: string, now = Date.now()): void {
    for (const [key] of this.keys(account, address)) {
      const list = this.recent(key, now);
      if (list.length === 0) this.makeRoom(now);
      list.push(now);
      this.failures.set(key, list);
    }
  }

  /**
   * Room for one more key. Expired entries go first; if every key is still
   * live, the one with the fewest attempts (the oldest of those) is evicted.
   * Never simply the oldest key: a flood of fresh names would then push out
   * the counter of the account being guessed, resetting its limit.
   */
  private makeRoom(now: number): void {
    if (this.failures.size < this.opts.maxKeys) return;
    for (const key of [...this.failures.keys()]) this.recent(key, now);
    if (this.failures.size < this.opts.maxKeys) return;
    let victim: string | undefined;
    let fewest = Infinity;
    for (const [key, list] of this.failures) {
      if (list.length < fewest) {
        victim = key;
        fewest = list.length;
        if (fewest <= 1) break;
      }
    }
    if (victim !== undefined) this.failures.delete(victim);
  }

  /**
   * A successful login: the account's attempts are cleared, and the address
   * no longer counts this attempt (the one `begin` recorded at `startedAt`).
   */
  recordSuccess(account: string, address?: string, startedAt?: number): void {
    this.failures.delete(`a:${account.toLowerCase()}`);
    if (address === undefined || startedAt === undefined) return;
    const key = `ip:${address}`;
    const list = this.failures.get(key);
    const at = list?.lastIndexOf(startedAt) ?? -1;
    if (!list || at < 0) return;
    list.splice(at, 1);
    if (list.length === 0) this.failures.delete(key);
  }
}
