// Bad input in sealed WebRTC signalling, as tables of generated cases
// (fast-check): whatever arrives as a signal — not base64, a box sealed by
// someone else, a box of the right peer around something that is not a
// signal — openSignal throws a SignalError, nothing else, and returns only
// signals the schema accepts.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { fuzzRuns, recordCases } from "@trellis/proto/fuzz";
import { sealBox } from "./derp/box";
import { RtcSignal, SignalError, openSignal, sealSignal } from "./signalling";

const me = generateKeyPair();
const peer = generateKeyPair();
const stranger = generateKeyPair();

function opened(sealed: string): "ok" | "refused" {
  try {
    expect(RtcSignal.safeParse(openSignal(sealed, me.privateKey, peer.publicKey)).success).toBe(true);
    return "ok";
  } catch (err) {
    expect(err).toBeInstanceOf(SignalError);
    return "refused";
  }
}

const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");

describe("sealed signalling on bad input", () => {
  it("any text, any bytes, a stranger's box: a SignalError", () => {
    const runs = fuzzRuns(500);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 300 }),
          fc.uint8Array({ maxLength: 300 }).map(b64),
          fc.json().map((j) => b64(sealBox(new TextEncoder().encode(j), stranger.privateKey, me.publicKey))),
        ),
        (s) => {
          expect(opened(s)).toBe("refused");
        },
      ),
      { numRuns: runs },
    );
    recordCases("bad input", "signalling: forged or garbled", runs);
  });

  it("the right peer's box around any JSON: a signal the schema accepts, or a SignalError", () => {
    const runs = fuzzRuns(500);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.json({ maxDepth: 3 }),
          fc
            .record({
              kind: fc.constantFrom("hello", "description", "candidate", "bye"),
              session: fc.string({ maxLength: 80 }),
              type: fc.constantFrom("offer", "answer", "rollback"),
              sdp: fc.string({ maxLength: 100 }),
            })
            .map((o) => JSON.stringify(o)),
        ),
        (j) => void opened(b64(sealBox(new TextEncoder().encode(j), peer.privateKey, me.publicKey))),
      ),
      { numRuns: runs },
    );
    recordCases("bad input", "signalling: sealed by the peer, any content", runs);
  });

  it("a real signal opens (so the table above is not refusing everything)", () => {
    const sealed = sealSignal({ kind: "bye", session: "s1" }, peer.privateKey, me.publicKey);
    expect(opened(sealed)).toBe("ok");
  });
});
