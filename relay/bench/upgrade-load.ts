// The relay benchmark's load generator over the plain `Upgrade: DERP`
// transport, as Tailscale's Go client connects over HTTP: the same generator
// drives Trellis's relay and Tailscale's derper, so the two are compared on
// equal terms. It is lean on purpose (one socket write per pair per turn,
// received frames counted without being copied) so that the servers, not the
// generator, set the pace on a shared 2-core machine.
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { generateKeyPair, type KeyPair } from "@trellis/proto/keyfile";
import { FRAME_HEADER_LEN, FrameType, KEY_LEN, MAGIC, encodeFrame, sealBox } from "@trellis/client/derp";
import { DEFAULT_LIMITS } from "../src/server";

export class LoadError extends Error {
  override readonly name = "LoadError";
}

/** One logged-in connection: counts the RecvPacket frames it reads. */
interface Conn {
  sock: Socket;
  key: KeyPair;
  received: number;
  onReceive: (() => void) | null;
}

const HANDSHAKE_TIMEOUT_MS = 30_000;

/** Log in over `Upgrade: DERP` and from then on count received packets without parsing them further. */
async function login(port: number, key: KeyPair): Promise<Conn> {
  const sock = connect(port, "127.0.0.1");
  sock.setNoDelay(true);
  const conn: Conn = { sock, key, received: 0, onReceive: null };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new LoadError("DERP login timed out")), HANDSHAKE_TIMEOUT_MS);
    const fail = (err: Error) => {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    };
    sock.once("error", fail);
    sock.once("connect", () =>
      sock.write("GET /derp HTTP/1.1\r\nHost: relay\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n"),
    );
    let buf = Buffer.alloc(0);
    let headerDone = false;
    let serverKey: Uint8Array | null = null;
    let loggedIn = false;
    // After login: the bytes still owed to the frame being skipped, and a partial header.
    let skip = 0;
    const head = Buffer.alloc(FRAME_HEADER_LEN);
    let headLen = 0;
    const count = (d: Buffer) => {
      let off = 0;
      let got = 0;
      while (off < d.length) {
        if (skip > 0) {
          const n = Math.min(skip, d.length - off);
          skip -= n;
          off += n;
          continue;
        }
        const n = Math.min(FRAME_HEADER_LEN - headLen, d.length - off);
        d.copy(head, headLen, off, off + n);
        headLen += n;
        off += n;
        if (headLen < FRAME_HEADER_LEN) break;
        headLen = 0;
        if (head[0] === FrameType.RecvPacket) got++;
        skip = head.readUInt32BE(1);
      }
      if (got) {
        conn.received += got;
        conn.onReceive?.();
      }
    };
    const onData = (d: Buffer) => {
      if (loggedIn) return count(d);
      buf = Buffer.concat([buf, d]);
      if (!headerDone) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const status = buf.subarray(0, 12).toString();
        if (status !== "HTTP/1.1 101") return fail(new LoadError(`the relay answered ${status}`));
        headerDone = true;
        buf = buf.subarray(end + 4);
      }
      // Whole frames only until the server info has arrived.
      while (buf.length >= FRAME_HEADER_LEN) {
        const len = buf.readUInt32BE(1);
        if (buf.length < FRAME_HEADER_LEN + len) return;
        const type = buf[0];
        const payload = buf.subarray(FRAME_HEADER_LEN, FRAME_HEADER_LEN + len);
        buf = buf.subarray(FRAME_HEADER_LEN + len);
        if (!serverKey) {
          if (type !== FrameType.ServerKey) return fail(new LoadError("first frame is not the server key"));
          serverKey = payload.slice(MAGIC.length, MAGIC.length + KEY_LEN);
          const info = new TextEncoder().encode('{"version":2}');
          sock.write(
            encodeFrame(FrameType.ClientInfo, key.publicKey, sealBox(info, key.privateKey, serverKey)),
          );
        } else if (type === FrameType.ServerInfo) {
          clearTimeout(timer);
          loggedIn = true;
          sock.off("error", fail);
          sock.on("error", () => sock.destroy());
          const rest = buf;
          buf = Buffer.alloc(0);
          if (rest.length) count(rest);
          resolve();
          return;
        }
      }
    };
    sock.on("data", onData);
  });
  return conn;
}

/**
 * Connect in batches, so hundreds of handshakes do not all wait on one another
 * (and no more at once than the relay lets one address have under way).
 */
async function inBatches<T>(
  n: number,
  make: (i: number) => Promise<T>,
  batch = DEFAULT_LIMITS.maxHandshakesPerIp,
): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i += batch) {
    out.push(...(await Promise.all(Array.from({ length: Math.min(batch, n - i) }, (_, j) => make(i + j)))));
  }
  return out;
}

/** CPU seconds (user + system) a process has used so far; null where /proc is not there. */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command (which may hold spaces): utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const CLOCK_TICKS = 100; // USER_HZ on Linux
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

export interface ClosedLoopResult {
  pps: number;
  mbps: number;
  /** The server's CPU time per delivered packet, when its pid was given: what it costs, however busy the machine. */
  cpuUsPerPacket: number | null;
  /** Windows given up as lost (the server dropped packets) during the measurement. */
  stalls: number;
}

/**
 * `pairs` sender→receiver pairs, each keeping at most `window` packets of
 * `size` bytes in flight (closed loop: a delivery frees a slot). A pair that
 * sees no delivery for `stallMs` writes its window off as lost and carries on,
 * so a server that drops cannot deadlock the run. Counts deliveries over
 * `seconds` after a warm-up.
 */
export async function closedLoop(
  port: number,
  opts: {
    pairs: number;
    window: number;
    size: number;
    seconds: number;
    warmupMs?: number;
    stallMs?: number;
    /** The server's process, to measure its CPU time. */
    pid?: number;
  },
): Promise<ClosedLoopResult> {
  const { pairs, window, size } = opts;
  const senders = await inBatches(pairs, () => login(port, generateKeyPair()));
  const receivers = await inBatches(pairs, () => login(port, generateKeyPair()));
  const sent = new Array<number>(pairs).fill(0);
  const lost = new Array<number>(pairs).fill(0);
  const progressAt = new Array<number>(pairs).fill(performance.now());
  let stalls = 0;
  // One frame per slot of the window, written as one buffer per turn: contents never change.
  const frames = receivers.map((r) => {
    const one = encodeFrame(FrameType.SendPacket, r.key.publicKey, new Uint8Array(size));
    const all = Buffer.alloc(one.length * window);
    for (let k = 0; k < window; k++) all.set(one, k * one.length);
    return { all, frameLen: one.length };
  });
  let running = true;
  const dirty = new Set<number>();
  let scheduled = false;
  const pump = () => {
    scheduled = false;
    if (!running) return;
    for (const i of dirty) {
      const inFlight = sent[i]! - receivers[i]!.received - lost[i]!;
      const n = window - inFlight;
      if (n <= 0) continue;
      const f = frames[i]!;
      senders[i]!.sock.write(f.all.subarray(0, n * f.frameLen));
      sent[i]! += n;
    }
    dirty.clear();
  };
  const schedule = (i: number) => {
    dirty.add(i);
    progressAt[i] = performance.now();
    if (!scheduled) {
      scheduled = true;
      setImmediate(pump);
    }
  };
  receivers.forEach((r, i) => (r.onReceive = () => schedule(i)));
  const stallMs = opts.stallMs ?? 250;
  const watchdog = setInterval(() => {
    const now = performance.now();
    for (let i = 0; i < pairs; i++) {
      if (now - progressAt[i]! < stallMs) continue;
      const inFlight = sent[i]! - receivers[i]!.received - lost[i]!;
      if (inFlight > 0) {
        lost[i]! += inFlight;
        stalls++;
      }
      schedule(i);
    }
  }, stallMs);
  for (let i = 0; i < pairs; i++) schedule(i);
  const total = () => receivers.reduce((a, r) => a + r.received, 0);
  await new Promise((r) => setTimeout(r, opts.warmupMs ?? 500));
  const start = total();
  const stallsAtStart = stalls;
  const cpu0 = opts.pid !== undefined ? cpuSeconds(opts.pid) : null;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, opts.seconds * 1000));
  const n = total() - start;
  const cpu1 = opts.pid !== undefined ? cpuSeconds(opts.pid) : null;
  const secs = (performance.now() - t0) / 1000;
  running = false;
  clearInterval(watchdog);
  for (const c of [...senders, ...receivers]) c.sock.destroy();
  return {
    pps: n / secs,
    mbps: (n * size) / secs / 1e6,
    cpuUsPerPacket: cpu0 !== null && cpu1 !== null && n > 0 ? ((cpu1 - cpu0) * 1e6) / n : null,
    stalls: stalls - stallsAtStart,
  };
}

export interface OpenLoopResult {
  /** Packets delivered per second while the senders pushed. */
  deliveredPps: number;
  /** Share of the packets written that never arrived. */
  loss: number;
}

/**
 * Open loop: every sender writes as fast as its own socket takes bytes (it
 * waits only for `drain`, at most `buffered` bytes held), with no regard to
 * delivery. A relay that back-pressures slows its senders and delivers what
 * they wrote; one that drops delivers less of it.
 */
export async function openLoop(
  port: number,
  opts: { pairs: number; size: number; seconds: number; buffered?: number },
): Promise<OpenLoopResult> {
  const { pairs, size } = opts;
  const limit = opts.buffered ?? 256 * 1024;
  const senders = await inBatches(pairs, () => login(port, generateKeyPair()));
  const receivers = await inBatches(pairs, () => login(port, generateKeyPair()));
  const BATCH = 16;
  let running = true;
  let sent = 0;
  senders.forEach((s, i) => {
    const one = encodeFrame(FrameType.SendPacket, receivers[i]!.key.publicKey, new Uint8Array(size));
    const batch = Buffer.alloc(one.length * BATCH);
    for (let k = 0; k < BATCH; k++) batch.set(one, k * one.length);
    const pump = () => {
      while (running && s.sock.writableLength < limit) {
        s.sock.write(batch);
        sent += BATCH;
      }
      if (running) s.sock.once("drain", pump);
    };
    setImmediate(pump);
  });
  const total = () => receivers.reduce((a, r) => a + r.received, 0);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, opts.seconds * 1000));
  const delivered = total();
  const secs = (performance.now() - t0) / 1000;
  running = false;
  // What was written but not yet delivered gets a second to arrive.
  await new Promise((r) => setTimeout(r, 1000));
  const loss = sent > 0 ? Math.max(0, 1 - total() / sent) : 0;
  for (const c of [...senders, ...receivers]) c.sock.destroy();
  return { deliveredPps: delivered / secs, loss };
}
