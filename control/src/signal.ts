// WebRTC signalling hand-off (`POST /api/v1/signal`): a node hands the server
// a message sealed end to end for one peer, and the server delivers it on
// that peer's map stream as `event: signal`, never looking inside.
//
// The server only decides whether to forward: the sender is the node whose
// key signed the request (approved, key valid); the recipient must be a node
// taking part in the tailnet that policy lets the sender see, or be seen by,
// as a peer; each sender has a token bucket; and the message is bounded
// (SIGNAL_MAX_SEALED) to fit a PostgreSQL NOTIFY, which carries it to
// streams on other replicas.
//
// 202 means queued for a stream: open in this process, or (with replicas)
// open somewhere as far as the database's `online` flag says, which this
// process cannot confirm; delivery is best effort either way (a stream whose
// reader lags drops signals). 404 `peer_offline` when no stream is known.
import type { Database, Models } from "@trellis/db";
import { SignalRequest } from "@trellis/proto";
import { ControlError } from "./errors";
import { parseOr400 } from "./errors-util";
import type { EventBus } from "./events";
import type { NetmapService } from "./netmap-service";
import type { Presence } from "./presence";

export interface RateLimit {
  /** Tokens added per second. */
  perSecond: number;
  /** Bucket size: the largest burst. */
  burst: number;
}

export const SIGNAL_RATE: RateLimit = { perSecond: 20, burst: 40 };

/** Per-key token buckets, bounded: full buckets are forgotten when the table grows. */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly limit: RateLimit,
    private readonly now: () => number = Date.now,
    private readonly maxKeys = 10_000,
  ) {}

  /** Take one token for `key`; false when its bucket is empty. */
  take(key: string): boolean {
    const now = this.now();
    const b = this.buckets.get(key) ?? { tokens: this.limit.burst, at: now };
    b.tokens = Math.min(this.limit.burst, b.tokens + ((now - b.at) / 1000) * this.limit.perSecond);
    b.at = now;
    const ok = b.tokens >= 1;
    if (ok) b.tokens -= 1;
    this.buckets.set(key, b);
    if (this.buckets.size > this.maxKeys) this.prune(now);
    return ok;
  }

  private prune(now: number): void {
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.limit.perSecond >= this.limit.burst) this.buckets.delete(k);
    }
  }
}

export interface SignalDeps {
  db: Database;
  netmaps: NetmapService;
  presence: Presence;
  bus: EventBus;
  limiter: TokenBuckets;
  /** Other replicas may hold the recipient's stream (PostgreSQL with the event bridge). */
  replicated: boolean;
}

export type SignalResult = { status: "queued" };

/** Validate and hand off one signal from `sender` (already authenticated). */
export async function sendSignal(
  deps: SignalDeps,
  sender: Models.Node,
  body: unknown,
): Promise<SignalResult> {
  const req = parseOr400(SignalRequest, body, "invalid signal");
  if (!deps.limiter.take(sender.id)) {
    throw new ControlError("rate_limited", 429, "too many signals; slow down and retry");
  }
  if (req.to === sender.nodeKey) {
    throw new ControlError("invalid_request", 400, "to: a node cannot signal itself", [
      { path: "to", message: "is the sender's own key" },
    ]);
  }
  const snap = await deps.netmaps.snapshot();
  if (!snap.peer(sender.id)) {
    throw new ControlError("not_authorized", 403, "this node is not approved to talk to peers yet");
  }
  const recipient = await deps.db.prisma.node.findUnique({
    where: { nodeKey: req.to },
    select: { id: true, online: true },
  });
  // Unknown, expired and unapproved recipients look the same: no such peer.
  if (!recipient || !snap.peer(recipient.id)) {
    throw new ControlError("unknown_peer", 404, "no node of the tailnet has this key");
  }
  if (!snap.sees(sender.id, recipient.id)) {
    throw new ControlError("not_peer", 403, "the tailnet policy does not let these two nodes connect");
  }
  const local = deps.presence.isStreaming(recipient.id);
  if (!local && !(deps.replicated && recipient.online)) {
    throw new ControlError(
      "peer_offline",
      404,
      "the peer has no open map stream; try again when it is online",
    );
  }
  deps.bus.publish({ type: "signal", to: req.to, from: sender.nodeKey, sealed: req.sealed });
  return { status: "queued" };
}
