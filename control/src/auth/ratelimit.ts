// Login throttling: failures are counted per account and per client address in
// a sliding window; while either is over its limit, logins are refused before
// the password is even checked (so a guesser also cannot measure the KDF).
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

  /** Milliseconds until a login may be tried again; 0 when allowed now. */
  retryAfterMs(account: string, address: string, now = Date.now()): number {
    const checks: [string, number][] = [
      [`a:${account.toLowerCase()}`, this.opts.maxPerAccount],
      [`ip:${address}`, this.opts.maxPerAddress],
    ];
    let wait = 0;
    for (const [key, max] of checks) {
      const list = this.recent(key, now);
      if (list.length >= max) wait = Math.max(wait, list[list.length - max]! + this.opts.windowMs - now);
    }
    return wait;
  }

  recordFailure(account: string, address: string, now = Date.now()): void {
    for (const key of [`a:${account.toLowerCase()}`, `ip:${address}`]) {
      if (!this.failures.has(key) && this.failures.size >= this.opts.maxKeys) {
        // Evict the oldest-inserted key: Map iteration order is insertion order.
        const first = this.failures.keys().next().value;
        if (first !== undefined) this.failures.delete(first);
      }
      const list = this.recent(key, now);
      list.push(now);
      this.failures.set(key, list);
    }
  }

  /** A successful login clears the account's failures (not the address's). */
  recordSuccess(account: string): void {
    this.failures.delete(`a:${account.toLowerCase()}`);
  }
}
