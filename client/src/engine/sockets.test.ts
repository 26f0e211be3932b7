// A TCP connection against a host that behaves as the WASM stack does: a
// handle it has released is unknown (every call on it throws), and a
// connection reset while its reader is behind keeps its handle until the
// data is read but refuses writes. Neither may throw out of the engine's
// loop: the reader gets what arrived, then the end; the writer is told.
import { describe, expect, it } from "vitest";
import { ConnectionError, TcpConnection, type TcpHost } from "./sockets";

function stackHost() {
  const live = new Set<number>([1]);
  let refuseWrites = false;
  const calls: string[] = [];
  const check = (h: number) => {
    if (!live.has(h)) throw new Error("unknown socket handle");
  };
  const host: TcpHost = {
    send: (h, data) => {
      check(h);
      calls.push(`send ${data.length}`);
      if (refuseWrites) throw new Error("the socket refused the operation");
      return data.length;
    },
    pause: (h, paused) => {
      check(h);
      calls.push(`pause ${paused}`);
    },
    close: (h) => {
      check(h);
      calls.push("close");
    },
    abort: (h) => {
      check(h);
      live.delete(h);
      calls.push("abort");
    },
    kick: () => undefined,
  };
  return {
    host,
    calls,
    release: () => live.delete(1),
    refuse: () => (refuseWrites = true),
  };
}

const remote = { address: "100.64.0.9", port: 22 };

describe("TcpConnection", () => {
  it("takes a released connection's last data past the read limit without touching its handle", async () => {
    const s = stackHost();
    const c = new TcpConnection(1, s.host, remote);
    // The batch: data beyond what the reader may leave unread, then the reset; the handle is already gone.
    s.release();
    c.releasedByStack();
    const big = new Uint8Array(600 * 1024).fill(7);
    expect(() => c.data(big)).not.toThrow();
    c.closedBy(false, true); // its end: both sides finished
    expect(s.calls).toEqual([]);
    const r = c.readable.getReader();
    expect((await r.read()).value?.length).toBe(big.length);
    expect((await r.read()).done).toBe(true);
  });

  it("tells the writer when the stack refuses writes, and still delivers what arrived", async () => {
    const s = stackHost();
    const c = new TcpConnection(1, s.host, remote);
    c.data(Uint8Array.of(1, 2, 3));
    s.refuse();
    const w = c.writable.getWriter();
    const err = await w.write(Uint8Array.of(9)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err).toMatchObject({ code: "reset" });
    const r = c.readable.getReader();
    expect((await r.read()).value).toEqual(Uint8Array.of(1, 2, 3));
    // Later writes are refused too, without asking the stack again.
    const sends = s.calls.filter((x) => x.startsWith("send")).length;
    await expect(w.write(Uint8Array.of(1))).rejects.toMatchObject({ code: "reset" });
    expect(s.calls.filter((x) => x.startsWith("send")).length).toBe(sends);
  });
});
