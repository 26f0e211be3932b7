/** One problem found in a policy or topology, located as precisely as we can. */
export interface PolicyIssue {
  /** Where in the document, e.g. `acls[2].dst[0]` (empty for the whole document). */
  path: string;
  message: string;
  /** 1-based line and column of the offending key or value, when the source text is known. */
  line?: number;
  column?: number;
}

/** What went wrong: the text, its shape, its meaning, its own tests, or the topology it was applied to. */
export type PolicyErrorKind = "syntax" | "schema" | "semantic" | "test" | "topology";

const CODES: Record<PolicyErrorKind, string> = {
  syntax: "policy_syntax",
  schema: "policy_invalid",
  semantic: "policy_invalid",
  test: "policy_test_failed",
  topology: "topology_invalid",
};

const BRAND = Symbol.for("trellis.PolicyError");

/**
 * Issues a PolicyError lists; more are counted, not listed. A person fixes
 * the first few anyway, and an API answer (and the work of locating each at
 * a line) stays bounded whatever the text.
 */
export const MAX_ISSUES = 100;

/** Render an issue as `file:line:col: path: message`, leaving out the parts that are unknown. */
export function formatIssue(issue: PolicyIssue, source?: string): string {
  const where = [source, issue.line, issue.line !== undefined ? issue.column : undefined]
    .filter((x) => x !== undefined && x !== "")
    .join(":");
  const parts = [where, issue.path, issue.message].filter((x) => x !== undefined && x !== "");
  return parts.join(": ");
}

/**
 * A policy (or topology) that cannot be used. The message lists all issues,
 * one per line, each naming line:column and key; `code` is a stable name of
 * the kind of problem for programs (an HTTP API reports it as a 400 with
 * every issue: the mapping lives at the API's edge, not here).
 */
export class PolicyError extends Error {
  override readonly name = "PolicyError";
  readonly [BRAND] = true;
  /** `policy_syntax`, `policy_invalid`, `policy_test_failed` or `topology_invalid`. */
  readonly code: string;
  /** The first {@link MAX_ISSUES} issues, then one that counts the rest. */
  readonly problems: PolicyIssue[];
  constructor(
    readonly kind: PolicyErrorKind,
    problems: PolicyIssue[],
    readonly source?: string,
  ) {
    const kept =
      problems.length <= MAX_ISSUES
        ? problems
        : [
            ...problems.slice(0, MAX_ISSUES),
            { path: "", message: `and ${problems.length - MAX_ISSUES} more problems not listed` },
          ];
    super(kept.map((i) => formatIssue(i, source)).join("\n"));
    this.problems = kept;
    this.code = CODES[kind];
  }

  /** Recognise a PolicyError across module copies (the server process and the Next.js bundle each load one). */
  static is(err: unknown): err is PolicyError {
    return typeof err === "object" && err !== null && (err as { [BRAND]?: unknown })[BRAND] === true;
  }
}

/** Render a path such as ["acls", 2, "dst", 0] as `acls[2].dst[0]`. */
export function formatPath(path: readonly (string | number | symbol)[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else {
      const key = String(seg);
      // Policy keys such as "group:eng" or "10.0.0.0/8" are not identifiers; quote them.
      out += /^[A-Za-z_][A-Za-z0-9_]*$/.test(key)
        ? out === ""
          ? key
          : `.${key}`
        : `[${JSON.stringify(key)}]`;
    }
  }
  return out;
}
