// The shape of a policy file (Tailscale's format), as a zod schema. Only the
// shape is checked here; what names mean (groups, tags, hosts, ports) is
// validate.ts's job, because it needs the whole document.
import { z } from "zod";
import { formatPath, PolicyError, type PolicyIssue } from "./errors";

const Str = z.string();
const StrList = z.array(Str);
const Proto = z.union([Str, z.number().int()]);

/** One `acls` entry. `users`/`ports` are the legacy names of `src`/`dst`; they are folded in by {@link parsePolicyDocument}. */
const AclSchema = z.strictObject({
  action: Str,
  src: StrList,
  proto: Proto.optional(),
  dst: StrList,
});

const GrantSchema = z.strictObject({
  src: StrList,
  dst: StrList,
  ip: StrList.optional(),
  app: z.record(Str, z.array(z.unknown())).optional(),
  via: StrList.optional(),
});

const SshSchema = z.strictObject({
  action: Str,
  src: StrList,
  dst: StrList,
  users: StrList,
  checkPeriod: Str.optional(),
  // Tailscale reads null as no variables.
  acceptEnv: StrList.nullable().optional(),
});

const AutoApproversSchema = z.strictObject({
  routes: z.record(Str, StrList).optional(),
  exitNode: StrList.optional(),
});

const NodeAttrSchema = z.strictObject({
  target: StrList,
  attr: StrList,
});

const TestSchema = z.strictObject({
  src: Str,
  proto: Proto.optional(),
  accept: StrList.optional(),
  deny: StrList.optional(),
});

const SshTestSchema = z.strictObject({
  src: Str,
  dst: StrList,
  accept: StrList.optional(),
  check: StrList.optional(),
  deny: StrList.optional(),
});

/** Zod schema of a policy file after key-case normalisation; unknown keys are rejected. */
export const PolicySchema = z.strictObject({
  groups: z.record(Str, StrList).optional(),
  hosts: z.record(Str, Str).optional(),
  tagOwners: z.record(Str, StrList).optional(),
  acls: z.array(AclSchema).optional(),
  grants: z.array(GrantSchema).optional(),
  ssh: z.array(SshSchema).optional(),
  autoApprovers: AutoApproversSchema.optional(),
  nodeAttrs: z.array(NodeAttrSchema).optional(),
  tests: z.array(TestSchema).optional(),
  sshTests: z.array(SshTestSchema).optional(),
  // Accepted for compatibility: it changes how a client picks its UDP port, not who may talk to whom.
  randomizeClientPort: z.boolean().optional(),
});

/** A policy file whose shape is valid (names are not yet checked). */
export type PolicyDocument = z.infer<typeof PolicySchema>;
export type AclEntry = z.infer<typeof AclSchema>;
export type GrantEntry = z.infer<typeof GrantSchema>;
export type SshEntry = z.infer<typeof SshSchema>;
export type AclTest = z.infer<typeof TestSchema>;
export type SshTest = z.infer<typeof SshTestSchema>;

/**
 * Tailscale policy keys Trellis does not implement. They are refused by name
 * rather than ignored: most of them narrow access (postures) or change
 * addressing, and silently dropping them would widen access or surprise.
 */
const UNSUPPORTED = new Set([
  "postures",
  "defaultSrcPosture",
  "srcPosture",
  "ipsets",
  "derpMap",
  "disableIPv4",
  "OneCGNATRoute",
  "attrConfig",
  "services",
  "ipPool",
]);

// Field names per object kind. Tailscale reads policy keys case-insensitively
// (Go's encoding/json), and older policies say "ACLs", "Hosts", "TagOwners";
// these lists map any spelling to the canonical one.
const FIELDS = {
  top: Object.keys(PolicySchema.shape),
  acl: ["action", "src", "proto", "dst", "users", "ports"],
  grant: Object.keys(GrantSchema.shape),
  ssh: Object.keys(SshSchema.shape),
  autoApprovers: Object.keys(AutoApproversSchema.shape),
  nodeAttr: Object.keys(NodeAttrSchema.shape),
  test: Object.keys(TestSchema.shape),
  sshTest: Object.keys(SshTestSchema.shape),
};

type Locate = (path: readonly (string | number)[]) => { line: number; column: number } | undefined;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Rename keys of `obj` to their canonical spelling. Returns a new object and
 * remembers, for error locations, the original spelling of each renamed key.
 */
function canon(
  obj: Record<string, unknown>,
  fields: string[],
  path: (string | number)[],
  issues: PolicyIssue[],
  spelled: Map<string, string>,
): Record<string, unknown> {
  const byLower = new Map(fields.map((f) => [f.toLowerCase(), f]));
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(obj)) {
    const name = byLower.get(key.toLowerCase()) ?? key;
    if (name in out) {
      issues.push({ path: formatPath([...path, key]), message: `"${key}" repeats "${name}"` });
      continue;
    }
    if (name !== key) spelled.set(formatPath([...path, name]), key);
    out[name] = value;
  }
  return out;
}

function canonList(
  value: unknown,
  fields: string[],
  path: (string | number)[],
  issues: PolicyIssue[],
  spelled: Map<string, string>,
  fold?: (o: Record<string, unknown>, p: (string | number)[]) => Record<string, unknown>,
): unknown {
  if (!Array.isArray(value)) return value;
  return value.map((item, i) => {
    if (!isObject(item)) return item;
    const c = canon(item, fields, [...path, i], issues, spelled);
    return fold ? fold(c, [...path, i]) : c;
  });
}

const EXPECTED: Record<string, string> = {
  string: "must be a string",
  array: "must be a list",
  object: "must be an object",
  record: "must be an object",
  boolean: "must be true or false",
  number: "must be a number",
  int: "must be an integer",
};

/**
 * Check the shape of a parsed policy document: known keys only (any letter
 * case, as Tailscale), right types, legacy `users`/`ports` folded into
 * `src`/`dst`. `locate` maps a path to a line:column in the source text.
 */
export function parsePolicyDocument(value: unknown, locate?: Locate, source?: string): PolicyDocument {
  const issues: PolicyIssue[] = [];
  const spelled = new Map<string, string>();
  const at = (path: (string | number)[], message: string): PolicyIssue => {
    const original = path.map((seg, i) =>
      typeof seg === "string" ? (spelled.get(formatPath(path.slice(0, i + 1))) ?? seg) : seg,
    );
    return { path: formatPath(path), message, ...(locate?.(original) ?? {}) };
  };
  if (!isObject(value)) {
    throw new PolicyError("schema", [at([], "a policy file must be a JSON object")], source);
  }
  const top = canon(value, FIELDS.top, [], issues, spelled);
  const foldAcl = (o: Record<string, unknown>, p: (string | number)[]) => {
    // Tailscale's original ACL syntax named these fields users and ports.
    for (const [legacy, name] of [
      ["users", "src"],
      ["ports", "dst"],
    ] as const) {
      if (!(legacy in o)) continue;
      if (name in o)
        issues.push(at([...p, legacy], `use either "${name}" or its old name "${legacy}", not both`));
      else {
        o[name] = o[legacy];
        spelled.set(formatPath([...p, name]), spelled.get(formatPath([...p, legacy])) ?? legacy);
      }
      delete o[legacy];
    }
    return o;
  };
  top.acls = canonList(top.acls, FIELDS.acl, ["acls"], issues, spelled, foldAcl);
  top.grants = canonList(top.grants, FIELDS.grant, ["grants"], issues, spelled);
  top.ssh = canonList(top.ssh, FIELDS.ssh, ["ssh"], issues, spelled);
  top.nodeAttrs = canonList(top.nodeAttrs, FIELDS.nodeAttr, ["nodeAttrs"], issues, spelled);
  top.tests = canonList(top.tests, FIELDS.test, ["tests"], issues, spelled);
  top.sshTests = canonList(top.sshTests, FIELDS.sshTest, ["sshTests"], issues, spelled);
  if (isObject(top.autoApprovers)) {
    top.autoApprovers = canon(top.autoApprovers, FIELDS.autoApprovers, ["autoApprovers"], issues, spelled);
  }
  for (const k of Object.keys(top)) if (top[k] === undefined) delete top[k];

  const parsed = PolicySchema.safeParse(top);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const path = issue.path.filter((p): p is string | number => typeof p !== "symbol");
      if (issue.code === "unrecognized_keys") {
        for (const key of issue.keys) {
          const known = UNSUPPORTED.has(key);
          issues.push(
            at(
              [...path, key],
              known
                ? `"${key}" is a Tailscale policy setting that Trellis does not support`
                : `unknown key "${key}"${suggest(key, path)}`,
            ),
          );
        }
      } else if (issue.code === "invalid_type") {
        const missing = valueAt(top, path) === undefined;
        issues.push(
          at(path, missing ? "is required" : (EXPECTED[issue.expected] ?? `must be ${issue.expected}`)),
        );
      } else {
        issues.push(at(path, issue.message));
      }
    }
  }
  if (issues.length > 0) throw new PolicyError("schema", issues, source);
  return parsed.data!;
}

function valueAt(root: unknown, path: (string | number)[]): unknown {
  let v = root;
  for (const seg of path) {
    if (typeof v !== "object" || v === null) return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

/** A "did you mean" hint for a misspelt key, from the fields allowed at that place. */
function suggest(key: string, path: (string | number)[]): string {
  const section = path.find((p) => typeof p === "string");
  const fields =
    path.length === 0
      ? FIELDS.top
      : section === "acls"
        ? FIELDS.acl.slice(0, 4)
        : section === "autoApprovers"
          ? FIELDS.autoApprovers
          : section && section in SECTION_FIELDS
            ? SECTION_FIELDS[section]!
            : [];
  let best: string | undefined;
  let bestDist = 3;
  for (const f of fields) {
    const d = distance(key.toLowerCase(), f.toLowerCase());
    if (d < bestDist) {
      best = f;
      bestDist = d;
    }
  }
  return best ? ` (did you mean "${best}"?)` : "";
}

const SECTION_FIELDS: Record<string, string[]> = {
  grants: FIELDS.grant,
  ssh: FIELDS.ssh,
  nodeAttrs: FIELDS.nodeAttr,
  tests: FIELDS.test,
  sshTests: FIELDS.sshTest,
};

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}
