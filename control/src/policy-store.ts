// The tailnet policy, stored as versions (PolicyVersion; the newest is in
// force). With none saved, Tailscale's default applies: allow all.
import type { Database } from "@trellis/db";
import { ControlError } from "./errors";
import { parsePolicy, validatePolicy, type Policy, type Topology } from "./policy/index";

export const DEFAULT_POLICY_TEXT = '{"acls":[{"action":"accept","src":["*"],"dst":["*:*"]}]}';

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

/** The policy in force. A stored version that no longer parses (engine changes) is a server error, not a silent allow-all. */
export async function loadPolicy(db: Database, cached?: ActivePolicy): Promise<ActivePolicy> {
  const row = await db.prisma.policyVersion.findFirst({ orderBy: { id: "desc" } });
  if (!row) return builtIn();
  if (cached && cached.version === row.id) return cached;
  return { version: row.id, text: row.text, policy: parsePolicy(row.text, { source: `policy v${row.id}` }) };
}

/**
 * Validate (syntax, meaning, and the policy's own tests against the current
 * tailnet) and save a new version. Invalid policies are refused with every
 * issue listed and nothing saved.
 */
export async function savePolicy(
  db: Database,
  text: string,
  actor: string,
  topology?: Topology,
  /** The version the edit started from: a different newest version fails with 409, checked inside the transaction. */
  expectedVersion?: number,
): Promise<ActivePolicy> {
  if (Buffer.byteLength(text) > MAX_POLICY_BYTES) {
    throw new ControlError("policy_too_large", 413, `the policy exceeds ${MAX_POLICY_BYTES} bytes`);
  }
  // PolicyError is a ControlError (400) listing every issue with line:column.
  const policy = validatePolicy(text, { source: "policy", topology });
  const conflict = (now?: number) =>
    new ControlError(
      "policy_conflict",
      409,
      `the policy was changed${now === undefined ? "" : ` (now version ${now})`} since you loaded version ${expectedVersion}; reload and apply your edit again`,
    );
  const pg = db.target.provider === "postgresql";
  const save = () =>
    db.prisma.$transaction(
      async (tx) => {
        if (expectedVersion !== undefined) {
          const latest = await tx.policyVersion.findFirst({ orderBy: { id: "desc" }, select: { id: true } });
          if ((latest?.id ?? 0) !== expectedVersion) throw conflict(latest?.id ?? 0);
        }
        return create(tx);
      },
      // Serializable: two saves from the same version cannot both pass the check.
      // (SQLite runs one write transaction at a time anyway.)
      pg ? { isolationLevel: "Serializable" } : undefined,
    );
  const create = async (tx: Parameters<Parameters<Database["prisma"]["$transaction"]>[0]>[0]) => {
    const saved = await tx.policyVersion.create({ data: { text, createdBy: actor } });
    await tx.auditEvent.create({
      data: {
        actor,
        action: "policy.update",
        target: `policy:${saved.id}`,
        detail: JSON.stringify({ bytes: text.length }),
      },
    });
    return saved;
  };
  let row;
  try {
    row = await save();
  } catch (err) {
    // A serialization failure means another save won the race.
    if (pg && (err as { code?: unknown }).code === "P2034") throw conflict();
    throw err;
  }
  return { version: row.id, text, policy };
}
