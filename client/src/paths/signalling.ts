// WebRTC signalling between two nodes, sealed end to end: each message is a
// NaCl box from the sender's node key to the recipient's (the same box DERP
// uses), so the control server that forwards it (`POST /api/v1/signal`, the
// recipient's map stream) can neither read nor forge it — and the SDP inside
// carries each side's DTLS fingerprint, which ties the data channel to the
// node key that sealed it. Browser-safe.
import { z } from "zod";
import { SIGNAL_MAX_SEALED } from "@trellis/proto/node";
import { openBox, sealBox } from "./derp/box";

/** What two nodes say to set up a direct path. `session` names one attempt. */
export const RtcSignal = z.discriminatedUnion("kind", [
  /** "I want a direct path; please offer" (from the side that does not offer). */
  z.strictObject({ kind: z.literal("hello"), session: z.string().max(64) }),
  z.strictObject({
    kind: z.literal("description"),
    session: z.string().max(64),
    type: z.enum(["offer", "answer"]),
    sdp: z.string().max(4000),
  }),
  z.strictObject({
    kind: z.literal("candidate"),
    session: z.string().max(64),
    candidate: z.string().max(1024),
    sdpMid: z.string().max(64).nullable(),
    sdpMLineIndex: z.number().int().min(0).max(64).nullable(),
  }),
  /** The attempt is over (closed, failed, or refused). */
  z.strictObject({ kind: z.literal("bye"), session: z.string().max(64) }),
]);
export type RtcSignal = z.infer<typeof RtcSignal>;

export class SignalError extends Error {
  override readonly name = "SignalError";
}

function toBase64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Seal a signal for `peerPublic` with our private key; base64, as `POST /api/v1/signal` carries it. */
export function sealSignal(signal: RtcSignal, privateKey: Uint8Array, peerPublic: Uint8Array): string {
  const sealed = toBase64(sealBox(new TextEncoder().encode(JSON.stringify(signal)), privateKey, peerPublic));
  if (sealed.length > SIGNAL_MAX_SEALED) throw new SignalError("signal too large to send");
  return sealed;
}

/** Open a signal sealed by `peerPublic` for us; throws SignalError on anything forged or malformed. */
export function openSignal(sealed: string, privateKey: Uint8Array, peerPublic: Uint8Array): RtcSignal {
  let opened: Uint8Array | null;
  try {
    opened = openBox(fromBase64(sealed), privateKey, peerPublic);
  } catch {
    opened = null;
  }
  if (!opened) throw new SignalError("signal not sealed by that peer");
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(opened));
  } catch {
    throw new SignalError("signal is not JSON");
  }
  const parsed = RtcSignal.safeParse(value);
  if (!parsed.success) throw new SignalError(`signal is invalid: ${parsed.error.issues[0]?.message ?? "?"}`);
  return parsed.data;
}
