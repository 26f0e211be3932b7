// What the admin functions need from the running control plane. The
// ControlRuntime implements it; tests can build one over a test database.
import type { Database } from "@trellis/db";
import type { Logger } from "@trellis/log";
import type { EventBus } from "../events";
import type { PolicyCheck } from "../policy-check/pool";
import type { PolicyStore } from "../policy-store";
import type { Topology } from "@trellis/policy";

export interface AdminContext {
  readonly db: Database;
  /** Publish after a change commits, so map streams (and console live views) follow. */
  readonly events: EventBus;
  readonly log: Logger;
  /** The policy in force, parsed once per version; saves go through admin/policy.ts applyPolicy. */
  readonly policies: PolicyStore;
  /**
   * Where policy texts are checked (dry runs and saves): worker threads in
   * the server (policy-check/pool.ts); without one, on this thread.
   */
  readonly policyCheck?: PolicyCheck;
  /** The tailnet as the policy engine sees it now (policy tests, reachability). */
  topology(): Promise<Topology>;
  /** The MagicDNS suffix in force, e.g. "trellis.internal". */
  dnsDomain(): Promise<string>;
}
