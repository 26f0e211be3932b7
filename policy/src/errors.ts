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

/** A {@link PolicyError} as plain data (structured-cloneable): its kind, listed issues, source and the count not listed. */
export interface PolicyErrorParts {
  kind: PolicyErrorKind;
  listed: PolicyIssue[];
  source?: string;
  notListed: number;
}

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
  /** How many issues were found beyond those listed (counted by the last entry of `problems`). */
  readonly notListed: number;
  /**
   * `notListed` counts issues found but not passed in `problems` (an error
   * rebuilt from its parts, e.g. after crossing a worker thread: see {@link parts}).
   */
  constructor(
    readonly kind: PolicyErrorKind,
    problems: PolicyIssue[],
    readonly source?: string,
    notListed = 0,
  ) {
    const more = notListed + Math.max(0, problems.length - MAX_ISSUES);
    const kept =
      more === 0
        ? problems
        : [...problems.slice(0, MAX_ISSUES), { path: "", message: `and ${more} more problems not listed` }];
    super(kept.map((i) => formatIssue(i, source)).join("\n"));
    this.problems = kept;
    this.notListed = more;
    this.code = CODES[kind];
  }

  /** What rebuilds this error with `new PolicyError(kind, listed, source, notListed)`: plain data, for postMessage. */
  parts(): PolicyErrorParts {
    const listed = this.notListed > 0 ? this.problems.slice(0, -1) : this.problems;
    return { kind: this.kind, listed, source: this.source, notListed: this.notListed };
  }

  /** The error {@link parts} describe. */
  static fromParts(p: PolicyErrorParts): PolicyError {
    return new PolicyError(p.kind, p.listed, p.source, p.notListed);
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
