// In-process fan-out of tailnet changes to open map streams. Writers publish
// after their transaction commits; every map session subscribes.
//
// Scale-out: with several server processes on one PostgreSQL database, a
// change that alters maps beyond display attributes is also written to the
// outbox (outbox.ts) in its own transaction, which numbers it (`seq`) and
// NOTIFYs every process at commit; the bridge (pg-bridge.ts) publishes here
// what others committed, reads the outbox for what it missed, and forwards
// the rest (endpoints, online state, signals) as plain NOTIFY. The events
// carry only ids, never state: every receiver re-reads the database, so a
// repeated notification costs a recomputation, not a wrong map, and the bus
// publishes each numbered change once, however many ways it arrives.
// (Signals carry data: a lost one is retried by the sender, as WebRTC
// signalling must tolerate anyway.)

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
  /** The change's number in the outbox (PostgreSQL): set on changes that must reach every replica. */
  const seq = z.number().int().positive().optional();
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
      seq,
    }),
    /**
     * A new policy version was saved, and nothing else changed: a save that
     * also changes nodes (routes auto-approved) publishes a `nodes` event for
     * them first, so builders may keep every node as it was.
     */
    z.object({ type: z.literal("policy"), origin, seq }),
    /** Tailnet or DNS settings changed (settings.ts): DNS and the relay map are in every map. */
    z.object({ type: z.literal("settings"), origin, seq }),
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
  // A numbered change needs no origin: every process, its writer's included, publishes it once by its number.
  return opts.originRequired
    ? schema.refine((e) => e.origin !== undefined || (e.type !== "signal" && e.seq !== undefined), {
        message: "origin is required",
        path: ["origin"],
      })
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

/** A change that alters maps: every event but signals. */
export type MapChange = Exclude<ControlEvent, { type: "signal" }>;

export type Listener = (event: ControlEvent) => void;

/**
 * Which numbered changes (outbox seqs) this process has published: all up
 * to `applied`, and those in `ahead` beyond it. A change may arrive from its
 * writer in this process, through NOTIFY and from the outbox; it is
 * published the first time only. A change published with an earlier one
 * still missing is a gap: `onGap` asks for the outbox to be read.
 */
export class ChangeSequence {
  private last = 0;
  private readonly ahead = new Set<number>();
  /** Called after a change was published while an earlier one is still missing. */
  onGap: (() => void) | null = null;

  /** Every change up to this one has been published. */
  get applied(): number {
    return this.last;
  }

  /** True while a change beyond `applied` was published but one before it was not. */
  get gapped(): boolean {
    return this.ahead.size > 0;
  }

  /** True the first time `seq` is offered (publish it); false for a change already published. */
  accept(seq: number): boolean {
    if (seq <= this.last || this.ahead.has(seq)) return false;
    this.ahead.add(seq);
    this.advance();
    return true;
  }

  /**
   * Every change up to `seq` is published or reflected (the outbox was
   * read up to it, or everything was recomputed): numbers below it that
   * never came are changes rolled back, which never will.
   */
  advanceTo(seq: number): void {
    if (seq > this.last) this.last = seq;
    for (const s of this.ahead) if (s <= this.last) this.ahead.delete(s);
    this.advance();
  }

  private advance(): void {
    while (this.ahead.delete(this.last + 1)) this.last++;
  }
}

export class EventBus {
  private readonly listeners = new Set<Listener>();
  /** Numbered changes published so far (PostgreSQL; SQLite's changes carry no number). */
  readonly sequence = new ChangeSequence();

  /** @param log where a listener's failure is reported (each listener fails alone) */
  constructor(private readonly log?: Logger) {}

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Hand `event` to every listener; false for a numbered change published before (nobody hears it again). */
  publish(event: ControlEvent): boolean {
    const numbered = event.type !== "signal" && event.seq !== undefined;
    if (numbered && !this.sequence.accept(event.seq!)) return false;
    for (const fn of [...this.listeners]) {
      try {
        fn(event);
      } catch (err) {
        // A listener's failure is its own: the others still hear the event.
        this.log?.error({ err, event: event.type }, "event listener failed");
      }
    }
    if (numbered && this.sequence.gapped) this.sequence.onGap?.();
    return true;
  }

  get size(): number {
    return this.listeners.size;
  }
}
