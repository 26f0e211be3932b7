// A set of routes (or rules) the daemon keeps on the host, changed one call
// at a time in the order asked: what is applied now, the last failure (for
// status), and a log line either way. SubnetRouter and PeerRoutes say how
// routes are applied; this says when, and keeps the books.
import type { Logger } from "@trellis/log";
import { Serial } from "./serial";

export abstract class HostRoutes {
  /** What is in place on the host. */
  protected applied: string[] = [];
  private readonly serial = new Serial();
  /** The last failure to apply, for status; null when the host matches the routes. */
  error: string | null = null;

  constructor(
    protected readonly tun: string,
    protected readonly log: Logger,
    private readonly words: { done: string; failed: string },
  ) {}

  get routes(): readonly string[] {
    return this.applied;
  }

  /** Make the host carry exactly `routes` (a call made while one runs waits for it). */
  update(routes: string[]): Promise<void> {
    return this.serial.run(async () => {
      if (JSON.stringify(routes) === JSON.stringify(this.applied) && this.error === null) return;
      try {
        await this.apply(routes);
        this.error = null;
        this.log.info({ routes }, this.words.done);
      } catch (err) {
        this.error = err instanceof Error ? err.message : String(err);
        this.log.error({ err: this.error, routes }, this.words.failed);
        throw err;
      }
    });
  }

  /** Change the host from `applied` to `routes`, keeping `applied` true as it goes. */
  protected abstract apply(routes: string[]): Promise<void>;
}
