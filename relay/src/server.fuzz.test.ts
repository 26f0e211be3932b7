// Bad input at the relay's front door, as tables of generated cases
// (fast-check): bytes before a login, and every frame type — with any
// payload, truncated, oversized, out of order — from a client that logged in
// properly. Whatever arrives, the relay neither throws nor logs a failure of
// its own: it closes the connection with a reason that names the fault, or
// drops and counts, and afterwards still relays between two other clients.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createLogger } from "@trellis/log";
import { generateKeyPair, type KeyPair } from "@trellis/proto/keyfile";
import { fuzzRuns, recordCases } from "@trellis/proto/fuzz";
import { FRAME_HEADER_LEN, FrameType, KEY_LEN, encodeFrame, sealBox } from "@trellis/client/derp";
import { RelayServer, type ConnHandle } from "./server";

/** Log lines of warn and above (a relay failure is logged as "relay connection failed"). */
const lines: string[] = [];
const log = createLogger("relay-fuzz", "warn", { write: (l: string) => void lines.push(l) });

const serverKey = generateKeyPair();
const relay = new RelayServer({
  key: serverKey,
  log,
  limits: { handshakeTimeoutMs: 60_000, rateBytesPerSec: 0 },
});

/** A connection as the relay sees it, recording what it writes and why it closes. */
function fakeConn(ip = "192.0.2.10") {
  const out: Uint8Array[] = [];
  const state = { closed: null as string | null, out };
  const handle: ConnHandle = relay.accept({
    write: (data, done) => {
      out.push(data.slice());
      done();
    },
    close: (reason) => {
      state.closed ??= reason;
    },
    remote: { ip, port: 41641 },
  });
  return { state, handle };
}

function clientInfo(key: KeyPair): Uint8Array {
  const info = new TextEncoder().encode(JSON.stringify({ version: 2, canAckPings: true }));
  return encodeFrame(FrameType.ClientInfo, key.publicKey, sealBox(info, key.privateKey, serverKey.publicKey));
}

const tick = () => new Promise((r) => setImmediate(r));

/** A client logged in with a fresh key. */
async function loggedIn() {
  const key = generateKeyPair();
  const c = fakeConn();
  c.handle.data(clientInfo(key));
  await tick();
  expect(c.state.closed).toBeNull();
  return { key, ...c };
}

/** The relay still carries a packet between two new clients. */
async function stillRelays(): Promise<void> {
  const a = await loggedIn();
  const b = await loggedIn();
  const before = b.state.out.length;
  a.handle.data(encodeFrame(FrameType.SendPacket, b.key.publicKey, new Uint8Array([1, 2, 3])));
  await tick();
  const got = Buffer.concat(b.state.out.slice(before));
  expect(got.includes(Buffer.from([FrameType.RecvPacket]))).toBe(true);
  expect(got.subarray(-3)).toEqual(Buffer.from([1, 2, 3]));
  a.handle.closed();
  b.handle.closed();
}

/** A frame header announcing `len` bytes, followed by `payload` (which may be shorter or longer). */
function rawFrame(type: number, len: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_LEN + payload.length);
  out[0] = type;
  new DataView(out.buffer).setUint32(1, len >>> 0);
  out.set(payload, FRAME_HEADER_LEN);
  return out;
}

const FRAME_TYPES = Object.values(FrameType) as number[];
const frameType = fc.oneof(fc.constantFrom(...FRAME_TYPES), fc.integer({ min: 0, max: 255 }));
/** A frame whose header may lie about its length (truncated, or far over the limit). */
const frame = fc
  .record({
    type: frameType,
    payload: fc.uint8Array({ maxLength: 200 }),
    lie: fc.oneof(
      { weight: 6, arbitrary: fc.constant(0) },
      { weight: 1, arbitrary: fc.integer({ min: -200, max: 200 }) },
      { weight: 1, arbitrary: fc.constantFrom(70_000, 0x7fffffff, 0xffffffff) },
    ),
  })
  .map(({ type, payload, lie }) =>
    rawFrame(type, lie > 60_000 ? lie : Math.max(0, payload.length + lie), payload),
  );
/** A stream cut anywhere: the bytes of `frames` in chunks of random sizes. */
const stream = fc
  .tuple(fc.array(frame, { maxLength: 12 }), fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1 }))
  .map(([frames, cuts]) => {
    const all = Buffer.concat(frames);
    const chunks: Uint8Array[] = [];
    for (let off = 0, i = 0; off < all.length; i++) {
      const n = cuts[i % cuts.length]!;
      chunks.push(all.subarray(off, off + n));
      off += n;
    }
    return chunks;
  });

/** The log lines a table run left that are failures of the relay itself, not refusals of bad input. */
function ownFailures(): string[] {
  return lines.splice(0).filter((l) => /relay connection failed|"level":(50|60)/.test(l));
}

describe("the relay refuses bad input, cleanly", () => {
  it("bytes before a login: no frame at all, a short or forged client info, or another frame first", async () => {
    const runs = fuzzRuns(300);
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.array(fc.uint8Array({ minLength: 1, maxLength: 400 }), { minLength: 1, maxLength: 4 }),
          stream,
        ),
        async (chunks) => {
          const c = fakeConn();
          for (const ch of chunks) c.handle.data(ch);
          await tick();
          c.handle.closed();
          expect(c.state.closed === null || c.state.closed.length > 0).toBe(true);
          expect(ownFailures()).toEqual([]);
        },
      ),
      { numRuns: runs },
    );
    recordCases("bad input", "DERP bytes before login (relay)", runs);
    await stillRelays();
  });

  it("every frame type from a logged-in client: any payload, truncated, oversized, cut anywhere", async () => {
    const runs = fuzzRuns(300);
    await fc.assert(
      fc.asyncProperty(stream, async (chunks) => {
        const c = await loggedIn();
        for (const ch of chunks) c.handle.data(ch);
        await tick();
        c.handle.closed();
        expect(ownFailures()).toEqual([]);
      }),
      { numRuns: runs },
    );
    recordCases("bad input", "DERP frames after login (relay)", runs);
    await stillRelays();
  });

  it("names the fault when it closes: an oversized frame, a short send, a mesh frame without the mesh key", async () => {
    const cases: [Uint8Array, RegExp][] = [
      [rawFrame(FrameType.SendPacket, 0xffffffff, new Uint8Array(0)), /exceeds the limit/],
      [encodeFrame(FrameType.SendPacket, new Uint8Array(KEY_LEN - 1)), /short send-packet/],
      [encodeFrame(FrameType.WatchConns), /needs the mesh key/],
      [encodeFrame(FrameType.Ping, new Uint8Array(3)), /ping payload/],
    ];
    for (const [bytes, reason] of cases) {
      const c = await loggedIn();
      c.handle.data(bytes);
      await tick();
      expect(c.state.closed ?? "(open)").toMatch(reason);
    }
    expect(ownFailures()).toEqual([]);
  });
});
