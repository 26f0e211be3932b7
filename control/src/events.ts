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

import { z } from "zod";
import type { Logger } from "@trellis/log";
import { NodeKeyText, SIGNAL_MAX_SEALED } from "@trellis/proto";

/**
 * The schema of ControlEvents, for events that cross a process boundary
 * (pg-bridge.ts). `maxIds` bounds a `nodes` event's ids; `origin` is the
 * publishing process (required on the wire, where a process skips its own).
 */
export function controlEventSchema(opts: { maxIds: number; originRequired: boolean }) {
  const origin = z.string().max(64).optional();
  const schema = z.discriminatedUnion("type", [
    /**
     * Nodes were created, changed or deleted. `attrsOnly`: only attributes
     * peers display changed (endpoints, home relay, online, last seen) — not
     * addresses, tags, routes or membership — so who sees whom and every
     * packet filter stay as they were and streams can patch instead of rebuild.
     */
    z.object({
      type: z.literal("nodes"),
      ids: z.array(z.string().max(64)).max(opts.maxIds),
      attrsOnly: z.boolean().optional(),
      origin,
    }),
    /**
     * A new policy version was saved, and nothing else changed: a save that
     * also changes nodes (routes auto-approved) publishes a `nodes` event for
     * them first, so builders may keep every node as it was.
     */
    z.object({ type: z.literal("policy"), origin }),
    /** Tailnet or DNS settings changed (settings.ts): DNS and the relay map are in every map. */
    z.object({ type: z.literal("settings"), origin }),
    /**
     * A WebRTC signal for the node whose key is `to` (signal.ts): the one event
     * that carries data, opaque to the server and bounded to fit a NOTIFY. Not
     * a tailnet change: map streams forward it and nobody recomputes.
     */
    z.object({
      type: z.literal("signal"),
      to: NodeKeyText,
      from: NodeKeyText,
      sealed: z.string().max(SIGNAL_MAX_SEALED),
      origin,
    }),
  ]);
  return opts.originRequired
    ? schema.refine((e) => e.origin !== undefined, { message: "origin is required", path: ["origin"] })
    : schema;
}

/** A change or signal as published in this process (`origin` set on events from other processes). */
export type ControlEvent = z.infer<ReturnType<typeof controlEventSchema>>;

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

  /** @param log where a listener's failure is reported (each listener fails alone) */
  constructor(private readonly log?: Logger) {}

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  publish(event: ControlEvent): void {
    for (const fn of [...this.listeners]) {
      try {
        fn(event);
      } catch (err) {
        // A listener's failure is its own: the others still hear the event.
        this.log?.error({ err, event: event.type }, "event listener failed");
      }
    }
  }

  get size(): number {
    return this.listeners.size;
  }
}
