// Reading a node's map stream in tests: one event at a time with a bound on
// the wait, the map kept applied, signals and the end collected.
import type { FullMap, MapEnd, MapMessage, SignalMessage } from "@trellis/proto";
import type { MapEvent, MapStream } from "../control/map-stream";

/** A map stream as a node reads it: the applied map, signals received, and how it ended. */
export class MapReader {
  private readonly it: AsyncIterator<MapEvent>;
  map!: FullMap;
  readonly signals: SignalMessage[] = [];
  ended: MapEnd | null = null;
  done = false;
  private last: MapMessage | null = null;

  constructor(readonly stream: MapStream) {
    this.it = stream[Symbol.asyncIterator]();
  }

  /** Read one event; false when the stream has ended. */
  async step(timeoutMs = 5000): Promise<boolean> {
    if (this.done) return false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const r = await Promise.race([
      this.it.next(),
      new Promise<never>((_, rej) => {
        timer = setTimeout(() => rej(new Error("no map stream event in time")), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
    if (r.done) {
      this.done = true;
      return false;
    }
    const ev = r.value;
    if (ev.type === "signal") this.signals.push(ev.signal);
    else if (ev.type === "end") this.ended = { type: "end", reason: ev.reason };
    else {
      this.map = ev.map;
      this.last = ev.message;
    }
    return true;
  }

  /** Read until the next map message (full map or delta) has been applied; returns it. */
  async next(timeoutMs = 5000): Promise<MapMessage> {
    this.last = null;
    while (this.last === null) {
      if (!(await this.step(timeoutMs))) throw new Error("map stream ended");
    }
    return this.last;
  }

  /** Read map messages until `pred` holds for the applied map; returns the messages read. */
  async until(pred: (m: FullMap) => boolean): Promise<MapMessage[]> {
    const seen: MapMessage[] = [];
    while (!pred(this.map)) seen.push(await this.next());
    return seen;
  }

  /** Read events until `pred` holds for the reader (its signals, its end). */
  async waitFor(pred: (r: this) => boolean, what = "condition"): Promise<void> {
    while (!pred(this)) {
      if (!(await this.step())) throw new Error(`stream ended before ${what}`);
    }
  }

  /** Read to the end of the stream; returns the server's end event, if any. */
  async end(): Promise<MapEnd | null> {
    while (await this.step());
    return this.ended;
  }

  close(): void {
    this.stream.close();
  }
}
