// The tailnet policy, stored as versions (PolicyVersion; the newest is in
// force). With none saved, Tailscale's default applies: allow all.
//
// One PolicyStore per process parses each version once: the save that
// validated a text hands its parsed policy to every later reader (the
// snapshot rebuild that follows the save, registrations applying
// autoApprovers), and a version saved by another replica is parsed once
// when first read here.
import type { Database } from "@trellis/db";
import { parsePolicy, validatePolicy, type Policy, type Topology } from "@trellis/policy";
import { audit, type AuditRef } from "./audit";
import { ControlError } from "./errors";
import type { ControlEvent } from "./events";
import { recordChange } from "./outbox";

type Tx = Parameters<Parameters<Database["prisma"]["$transaction"]>[0]>[0];
/** The advisory lock that makes policy saves take turns (PostgreSQL), "TRLP" in ASCII. */
const SAVE_LOCK = 0x54524c50;
/** Changes a save publishes, in order: its nodes' (if any), then the policy's. */
export type SaveChanges = [
  ...Extract<ControlEvent, { type: "nodes" }>[],
  Extract<ControlEvent, { type: "policy" }>,
];

/**
 * The policy a new tailnet starts with (version 0): Tailscale's default
 * meaning — every machine may reach every other — written out with the
 * sections people fill in next, commented, as Tailscale's own default is.
 */
export const DEFAULT_POLICY_TEXT = `// The tailnet's access policy, in Tailscale's policy format (HuJSON: JSON
// with comments and trailing commas). Nothing is allowed unless a rule here
// allows it; this starting policy allows everything.
{
  // Groups of users, named in rules as group:<name>.
  // "groups": {
  //   "group:eng": ["alice@example.com", "bob@example.com"],
  // },

  // Tags for servers and gateways, and who may put each tag on a machine.
  // "tagOwners": {
  //   "tag:server": ["autogroup:admin"],
  // },

  "acls": [
    // Every machine may reach every port of every other machine.
    // To narrow it, replace this rule with rules like:
    //   {"action": "accept", "src": ["group:eng"], "dst": ["tag:server:22,443"]},
    //   {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
    {"action": "accept", "src": ["*"], "dst": ["*:*"]},
  ],

  // Checked at every save: a policy whose tests fail is not saved.
  // "tests": [
  //   {"src": "alice@example.com", "accept": ["tag:server:22"], "deny": ["tag:server:5432"]},
  // ],
}
`;

/** Largest policy file accepted (Tailscale's limit is about 1 MiB). */
export const MAX_POLICY_BYTES = 1024 * 1024;

export interface ActivePolicy {
  /** PolicyVersion id; 0 for the built-in default. */
  version: number;
  text: string;
  policy: Policy;
}

let defaultPolicy: ActivePolicy | null = null;

function builtIn(): ActivePolicy {
  defaultPolicy ??= { version: 0, text: DEFAULT_POLICY_TEXT, policy: parsePolicy(DEFAULT_POLICY_TEXT) };
  return defaultPolicy;
}

export interface SaveOptions {
  /**
   * More changes to nodes in the save's transaction (autoApprovers'
   * approvals: routes.ts autoApproveIn); returns the ids of nodes changed,
   * announced before the policy (a policy event alone promises no node changed).
   */
  alongside?: (tx: Tx, policy: Policy) => Promise<string[]>;
  /** The version the edit started from: a different newest version fails with 409, checked inside the transaction. */
  expectedVersion?: number;
  /** Restoring an old version: audited as `policy.restore` naming it. */
  restoredFrom?: number;
  /** Where errors say the text came from ("policy", "policy v3"). */
  source?: string;
  /** `text` already validated against `topology` (off the event loop, admin/policy.ts): its parsed policy. */
  validated?: Policy;
}

/** Refuse a policy over {@link MAX_POLICY_BYTES} (413), before any work on it. */
export function assertPolicySize(text: string): void {
  if (new TextEncoder().encode(text).byteLength > MAX_POLICY_BYTES) {
    throw new ControlError("policy_too_large", 413, `the policy exceeds ${MAX_POLICY_BYTES} bytes`);
  }
}

export class PolicyStore {
  /** The newest version parsed so far. */
  private latest: ActivePolicy | null = null;

  constructor(private readonly db: Database) {}

  /**
   * The policy in force. Reads only the newest version's id when it is the
   * one already parsed. A stored version that no longer parses (engine
   * changes) is a server error, not a silent allow-all.
   */
  async current(): Promise<ActivePolicy> {
    const head = await this.db.prisma.policyVersion.findFirst({
      orderBy: { id: "desc" },
      select: { id: true },
    });
    if (!head) return builtIn();
    if (this.latest?.version === head.id) return this.latest;
    const row = await this.db.prisma.policyVersion.findUniqueOrThrow({ where: { id: head.id } });
    return this.remember({
      version: row.id,
      text: row.text,
      policy: parsePolicy(row.text, { source: `policy v${row.id}` }),
    });
  }

  /**
   * Validate (syntax, meaning, and the policy's own tests against `topology`)
   * and save a new version. An invalid policy is refused with every issue
   * listed (a PolicyError, 400 at the API) and nothing is saved.
   */
  async save(
    text: string,
    actor: AuditRef,
    topology: Topology,
    opts: SaveOptions = {},
  ): Promise<ActivePolicy & { changes: SaveChanges }> {
    assertPolicySize(text);
    const policy = opts.validated ?? validatePolicy(text, { source: opts.source ?? "policy", topology });
    const expected = opts.expectedVersion;
    const conflict = (now?: number) =>
      new ControlError(
        "policy_conflict",
        409,
        `the policy was changed${now === undefined ? "" : ` (now version ${now})`} since you loaded version ${expected}; reload and apply your edit again`,
      );
    const pg = this.db.target.provider === "postgresql";
    const row = await this.db.prisma.$transaction(async (tx) => {
      // Saves take turns, so two from the same version cannot both pass the check.
      // (SQLite runs one write transaction at a time anyway.)
      if (pg) await tx.$queryRawUnsafe(`SELECT 1 FROM (SELECT pg_advisory_xact_lock($1)) l`, SAVE_LOCK);
      const head = await tx.policyVersion.findFirst({ orderBy: { id: "desc" }, select: { id: true } });
      if (expected !== undefined && (head?.id ?? 0) !== expected) throw conflict(head?.id ?? 0);
      const saved = await tx.policyVersion.create({ data: { text, createdBy: actor } });
      const bytes = new TextEncoder().encode(text).byteLength;
      await audit(
        tx,
        opts.restoredFrom === undefined
          ? { actor, action: "policy.update", target: `policy:${saved.id}`, detail: { bytes } }
          : {
              actor,
              action: "policy.restore",
              target: `policy:${saved.id}`,
              detail: {
                before: { version: head?.id ?? 0 },
                after: { version: saved.id, restoredFrom: opts.restoredFrom, bytes },
              },
            },
      );
      const ids = (await opts.alongside?.(tx, policy)) ?? [];
      // Nodes first, in the outbox too: every replica hears them before the policy.
      const nodes = ids.length ? [await recordChange(this.db, tx, { type: "nodes", ids })] : [];
      const changes: SaveChanges = [...nodes, await recordChange(this.db, tx, { type: "policy" })];
      return { saved, changes };
    });
    return { ...this.remember({ version: row.saved.id, text, policy }), changes: row.changes };
  }

  private remember(active: ActivePolicy): ActivePolicy {
    if (!this.latest || active.version > this.latest.version) this.latest = active;
    return active;
  }
}
