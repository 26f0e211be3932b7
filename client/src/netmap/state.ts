// A node's view of the tailnet, kept by applying its map stream's messages in
// order: the full map first, then each delta, whose `seq` must follow the
// last one's. A gap means a message was lost; the map would be wrong from
// then on, so it is refused and the stream must start over from a full map.
import { applyDelta, type FullMap, type MapMessage } from "@trellis/proto";

export class MapSequenceError extends Error {
  override readonly name = "MapSequenceError";
  constructor(
    /** The seq that should have come next; null before the first full map. */
    readonly expected: number | null,
    readonly got: number,
  ) {
    super(
      expected === null
        ? `map stream sent a delta (seq ${got}) before its full map`
        : `map stream skipped from seq ${expected - 1} to ${got}`,
    );
  }
}

/** Check that `got` follows `last` (the previous message's seq, null before the full map). */
export function checkSeq(last: number | null, got: number): void {
  if (last === null || got !== last + 1) throw new MapSequenceError(last === null ? null : last + 1, got);
}

export class NetmapState {
  private current: FullMap | null = null;

  /** The map as of the last message applied; null before the first full map. */
  get map(): FullMap | null {
    return this.current;
  }

  /** Apply the next message of the stream; throws MapSequenceError (and keeps the old map) on a gap. */
  apply(msg: MapMessage): FullMap {
    if (msg.type === "full") {
      this.current = msg;
    } else {
      checkSeq(this.current?.seq ?? null, msg.seq);
      this.current = applyDelta(this.current!, msg);
    }
    return this.current;
  }

  /** Forget the map (a new stream begins with a full map). */
  reset(): void {
    this.current = null;
  }
}
