// One policy check as a worker thread runs it: parse, validate and run the
// policy's tests, answered as plain data that crosses postMessage (a
// structured clone): the parsed policy when asked for, or the PolicyError's
// parts. Nothing here touches the database or the event loop of the server.
import {
  PolicyError,
  validatePolicy,
  type Policy,
  type PolicyErrorParts,
  type Topology,
} from "@trellis/policy";

export interface CheckRequest {
  id: number;
  text: string;
  /** The tailnet the policy's tests run against (a structured clone of the runtime's). */
  topology: Topology;
  source: string;
  /** Send the parsed policy back (a save needs it; a dry run does not). */
  wantPolicy: boolean;
}

export type CheckReply =
  | { id: number; ok: true; policy?: Policy }
  | { id: number; ok: false; policyError: PolicyErrorParts }
  | { id: number; ok: false; crash: string };

/** Run one check; never throws. */
export function runCheck(req: CheckRequest): CheckReply {
  try {
    const policy = validatePolicy(req.text, { source: req.source, topology: req.topology });
    return req.wantPolicy ? { id: req.id, ok: true, policy } : { id: req.id, ok: true };
  } catch (err) {
    if (PolicyError.is(err)) return { id: req.id, ok: false, policyError: err.parts() };
    return { id: req.id, ok: false, crash: err instanceof Error ? (err.stack ?? err.message) : String(err) };
  }
}
