// Node reports to the control server that are not part of the netmap:
// connection logs and WebRTC signals. Bundle-safe.
import { z } from "zod";
import { EndpointText, NodeKeyText } from "./control";

// --- Connection logs -------------------------------------------------------------

/** One end of a connection: `ip:port` or `[ipv6]:port`. */
const FlowEnd = EndpointText;

export const ConnectionRecord = z.strictObject({
  direction: z.enum(["in", "out"]),
  proto: z.number().int().min(0).max(255),
  src: FlowEnd,
  dst: FlowEnd,
  start: z.iso.datetime(),
  end: z.iso.datetime().optional(),
  txBytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
  rxBytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
  txPackets: z
    .number()
    .int()
    .min(0)
    .max(2 ** 31 - 1)
    .default(0),
  rxPackets: z
    .number()
    .int()
    .min(0)
    .max(2 ** 31 - 1)
    .default(0),
});
export type ConnectionRecord = z.input<typeof ConnectionRecord>;

/** Body of `POST /api/v1/connections` (signed by the reporting node). */
export const ConnectionReport = z.strictObject({
  connections: z.array(ConnectionRecord).min(1).max(500),
});
export type ConnectionReport = z.input<typeof ConnectionReport>;

/** Answer to `POST /api/v1/connections`: how many records were stored. */
export const ConnectionReportResponse = z.object({ accepted: z.number().int().nonnegative() });
export type ConnectionReportResponse = z.infer<typeof ConnectionReportResponse>;

// --- WebRTC signalling -----------------------------------------------------------

/**
 * Longest `sealed` accepted, in base64 characters (4,500 bytes sealed). Signals
 * cross replicas as PostgreSQL NOTIFY payloads, which must stay under 8,000
 * bytes with the two node keys and the envelope; an SDP offer with a handful
 * of ICE candidates fits easily, more candidates go in further signals.
 */
export const SIGNAL_MAX_SEALED = 6000;

/**
 * Body of `POST /api/v1/signal` (signed by the sender): an opaque message for
 * one peer, sealed end to end with the two nodes' keys (NaCl box), so the
 * server forwards what it can neither read nor forge. Delivered on the
 * recipient's map stream as a `signal` event.
 */
export const SignalRequest = z.strictObject({
  to: NodeKeyText,
  /** base64 of nonce ‖ box. */
  sealed: z
    .string()
    .min(1)
    .max(SIGNAL_MAX_SEALED)
    .regex(/^[A-Za-z0-9+/]+={0,2}$/, "must be base64"),
});
export type SignalRequest = z.infer<typeof SignalRequest>;

/** Answer to `POST /api/v1/signal` (202): handed to the recipient's stream, delivery best effort. */
export const SignalResponse = z.object({ status: z.literal("queued") });
export type SignalResponse = z.infer<typeof SignalResponse>;

/** `event: signal` on the recipient's map stream: the sealed message and who sealed it. */
export const SignalMessage = z.object({
  type: z.literal("signal"),
  from: NodeKeyText,
  sealed: z.string().max(SIGNAL_MAX_SEALED),
});
export type SignalMessage = z.infer<typeof SignalMessage>;
