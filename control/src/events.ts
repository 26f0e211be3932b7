// In-process fan-out of tailnet changes to open map streams. Writers publish
// after their transaction commits; every map session subscribes.
//
// Scale-out: with several server processes on one PostgreSQL database, a
// bridge subscribes to this bus and forwards each local event as
// `NOTIFY trellis_events, '<json>'`, and LISTENs on the same channel to
// publish other processes' events here (skipping its own by `origin`). The
// events therefore carry only ids, never state: every receiver re-reads the
// database, so a lost or duplicated notification costs a recomputation, not
// a wrong map. (Signals are the exception: a lost one is retried by the
// sender, as WebRTC signalling must tolerate anyway.)

export type ControlEvent =
  /**
   * Nodes were created, changed or deleted. `attrsOnly`: only attributes
   * peers display changed (endpoints, home relay, online, last seen) — not
   * addresses, tags, routes or membership — so who sees whom and every
   * packet filter stay as they were and streams can patch instead of rebuild.
   */
  | { type: "nodes"; ids: string[]; attrsOnly?: boolean; origin?: string }
  /**
   * A new policy version was saved, and nothing else changed: a save that
   * also changes nodes (routes auto-approved) publishes a `nodes` event for
   * them first, so builders may keep every node as it was.
   */
  | { type: "policy"; origin?: string }
  /** Tailnet or DNS settings changed (settings.ts): DNS and the relay map are in every map. */
  | { type: "settings"; origin?: string }
  /**
   * A WebRTC signal for the node whose key is `to` (signal.ts): the one event
   * that carries data, opaque to the server and bounded to fit a NOTIFY. Not
   * a tailnet change: map streams forward it and nobody recomputes.
   */
  | { type: "signal"; to: string; from: string; sealed: string; origin?: string };

/** True for events that change what maps contain (all but signals). */
export function changesMaps(e: ControlEvent): e is Exclude<ControlEvent, { type: "signal" }> {
  return e.type !== "signal";
}

/** The node ids an attributes-only change is limited to; undefined for a structural change. */
export function attrsOnlyIds(e: ControlEvent): readonly string[] | undefined {
  return e.type === "nodes" && e.attrsOnly ? e.ids : undefined;
}

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
