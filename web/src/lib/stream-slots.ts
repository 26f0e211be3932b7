// A bound on long-lived streams per user (the console's /api/v1/events): each
// holds a subscription, a timer and a socket, so one account (or one stolen
// API token) opening thousands would exhaust the server for everyone.

/** Open console event streams allowed per user: a few tabs, with room to spare. */
export const MAX_STREAMS_PER_USER = 16;

export class StreamSlots {
  private readonly open = new Map<string, number>();

  constructor(private readonly max = MAX_STREAMS_PER_USER) {}

  /** Take a slot for `userId`: the function that gives it back (once), or null when all are in use. */
  acquire(userId: string): (() => void) | null {
    const n = this.open.get(userId) ?? 0;
    if (n >= this.max) return null;
    this.open.set(userId, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(userId) ?? 1) - 1;
      if (left > 0) this.open.set(userId, left);
      else this.open.delete(userId);
    };
  }

  count(userId: string): number {
    return this.open.get(userId) ?? 0;
  }
}

const KEY = Symbol.for("trellis.web.eventStreamSlots");

/** The process's one set of event-stream slots (route modules may be loaded more than once). */
export function eventStreamSlots(): StreamSlots {
  const g = globalThis as { [KEY]?: StreamSlots };
  return (g[KEY] ??= new StreamSlots());
}
