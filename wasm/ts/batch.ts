// The batch layout every binding takes: the items back to back in one buffer,
// and their lengths. One crossing into the engine per batch, not per item.

/** `items` laid out for a batch call: one buffer and each item's length. */
export function concatBatch(items: readonly Uint8Array[]): { buf: Uint8Array; lens: Uint32Array } {
  let total = 0;
  for (const i of items) total += i.length;
  const buf = new Uint8Array(total);
  const lens = new Uint32Array(items.length);
  let off = 0;
  items.forEach((item, i) => {
    buf.set(item, off);
    lens[i] = item.length;
    off += item.length;
  });
  return { buf, lens };
}
