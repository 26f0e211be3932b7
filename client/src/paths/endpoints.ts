// Endpoint handles: the WireGuard core names where a datagram came from and
// where to send one by a small integer it never interprets (wasm/src: time
// and I/O come from the host). The host keeps the table from handles to what
// they stand for — a UDP address, a WebRTC data channel, a relay path — so
// the WASM side carries no strings and no objects per packet.
//
// The table is bounded: every datagram from a new source address takes a
// handle before the core has authenticated it, so a flood of spoofed sources
// must not grow it without end. When full, the handle used least recently is
// reused; its slot's generation (the handle's high bits) changes, so a peer
// still holding the old handle finds nothing instead of someone else's path.
// A handle in use by a live peer is used for every packet sent to it, so it
// is never the least recent.

const SLOT_BITS = 16;
const SLOT_MASK = (1 << SLOT_BITS) - 1;
const MAX_GENERATION = 0x7fff;

interface Slot<A> {
  key: string;
  addr: A;
  gen: number;
  /** Neighbours in recency order (most recent at the list's tail). */
  prev: number;
  next: number;
}

export class EndpointTable<A> {
  private readonly slots: Slot<A>[] = [];
  private readonly byKey = new Map<string, number>();
  private head = -1;
  private tail = -1;

  /** @param capacity most handles alive at once (at most 65,536) */
  constructor(private readonly capacity = 4096) {
    if (capacity < 1 || capacity > SLOT_MASK + 1) throw new RangeError("capacity must be 1-65536");
  }

  get size(): number {
    return this.byKey.size;
  }

  /** The handle of the endpoint named `key` (made now if new); marks it used. */
  handle(key: string, addr: A): number {
    let i = this.byKey.get(key);
    if (i === undefined) {
      if (this.slots.length < this.capacity) {
        i = this.slots.length;
        this.slots.push({ key, addr, gen: 0, prev: -1, next: -1 });
      } else {
        i = this.head;
        const s = this.slots[i]!;
        this.unlink(i);
        this.byKey.delete(s.key);
        s.key = key;
        s.addr = addr;
        s.gen = s.gen === MAX_GENERATION ? 0 : s.gen + 1;
      }
      this.byKey.set(key, i);
      this.append(i);
    } else {
      this.touch(i);
    }
    const s = this.slots[i]!;
    return (s.gen << SLOT_BITS) | i;
  }

  /** What `handle` stands for, or undefined when it was never made or has been reused; marks it used. */
  get(handle: number): A | undefined {
    const i = handle & SLOT_MASK;
    const s = this.slots[i];
    if (!s || s.gen !== handle >>> SLOT_BITS) return undefined;
    this.touch(i);
    return s.addr;
  }

  private touch(i: number): void {
    if (this.tail === i) return;
    this.unlink(i);
    this.append(i);
  }

  private unlink(i: number): void {
    const s = this.slots[i]!;
    if (s.prev >= 0) this.slots[s.prev]!.next = s.next;
    else this.head = s.next;
    if (s.next >= 0) this.slots[s.next]!.prev = s.prev;
    else this.tail = s.prev;
    s.prev = s.next = -1;
  }

  private append(i: number): void {
    const s = this.slots[i]!;
    s.prev = this.tail;
    s.next = -1;
    if (this.tail >= 0) this.slots[this.tail]!.next = i;
    else this.head = i;
    this.tail = i;
  }
}
