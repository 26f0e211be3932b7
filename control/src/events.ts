// In-process fan-out of tailnet changes to open map streams. Writers publish
// after their transaction commits; every map session subscribes.
//
// Scale-out: with several server processes on one PostgreSQL database, a
// bridge subscribes to this bus and forwards each local event as
// `NOTIFY trellis_events, '<json>'`, and LISTENs on the same channel to
// publish other processes' events here (skipping its own by `origin`). The
// events therefore carry only ids, never state: every receiver re-reads the
// database, so a lost or duplicated notification costs a recomputation, not
// a wrong map.

export type ControlEvent =
  /**
   * Nodes were created, changed or deleted. `attrsOnly`: only attributes
   * peers display changed (endpoints, home relay, online, last seen) — not
   * addresses, tags, routes or membership — so who sees whom and every
   * packet filter stay as they were and streams can patch instead of rebuild.
   */
  | { type: "nodes"; ids: string[]; attrsOnly?: boolean; origin?: string }
  /** A new policy version was saved. */
  | { type: "policy"; origin?: string };

export type Listener = (event: ControlEvent) => void;

export class EventBus {
  private readonly listeners = new Set<Listener>();

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  publish(event: ControlEvent): void {
    for (const fn of [...this.listeners]) {
      try {
        fn(event);
      } catch {
        // A listener's failure is its own (sessions log their errors); the others still hear the event.
      }
    }
  }

  get size(): number {
    return this.listeners.size;
  }
}
