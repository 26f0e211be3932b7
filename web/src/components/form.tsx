// What every console form shows of a failed submission and how it submits.
//
// An error body's message summarises its issues ("invalid settings: name: too
// long (and 1 more)"), so a form that shows the issues must not show the
// message as well, or the same error appears twice. The rule here: each issue
// is shown once — at the field that claims its path, otherwise in the banner —
// and the message only when there are no issues.
import type { CSSProperties, ReactNode } from "react";
import type { ApiIssue } from "./api";

/** A failed submission: its message (null: none) and per-field issues. */
export interface Failure {
  error: string | null;
  issues: ApiIssue[];
}

/** True when `issuePath` is `path` or lies under it (`path.…`). */
function under(issuePath: string, path: string): boolean {
  return issuePath === path || issuePath.startsWith(path + ".");
}

/**
 * What an issue at or under `path` says at that field: its message, after the
 * rest of its path when that names something people see ("regions: …"). A
 * bare list index ("tags.0" at the tags) is left out: it counts the entries
 * sent, not anything on the screen, and the message names its entry.
 */
function atField(issue: ApiIssue, path: string): string {
  const rest = issue.path === path ? "" : issue.path.slice(path.length + 1);
  return rest === "" || /^\d+$/.test(rest) ? issue.message : `${rest}: ${issue.message}`;
}

/**
 * The messages of the issues at `path` (and, unless `exact`, under it),
 * shown at the field that claims it, each once. List `path` in the form's
 * `<FormErrors fields>` so the banner leaves them out.
 */
export function FieldError({
  issues,
  path,
  exact = false,
  block = false,
  message,
}: {
  issues: ApiIssue[];
  path: string;
  exact?: boolean;
  /** A paragraph (below a group of controls) instead of a line inside a label. */
  block?: boolean;
  /** A message of the form's own (a check made before sending) shown instead. */
  message?: string | null;
}) {
  const text =
    message ||
    [
      ...new Set(
        issues.filter((i) => (exact ? i.path === path : under(i.path, path))).map((i) => atField(i, path)),
      ),
    ].join("; ");
  if (!text) return null;
  // An alert of its own: when every issue is at a field there is no banner to announce the failure.
  return block ? (
    <p className="field-error" role="alert">
      {text}
    </p>
  ) : (
    <span className="field-error" role="alert">
      {text}
    </span>
  );
}

/** Whether a field error shows at `path` (for `aria-invalid`). */
export function hasFieldError(issues: ApiIssue[], path: string): true | undefined {
  return issues.some((i) => under(i.path, path)) ? true : undefined;
}

function IssueText({ issue }: { issue: ApiIssue }) {
  return (
    <>
      {issue.path && issue.path !== "(body)" ? (
        <>
          <code>{issue.path}</code>{" "}
        </>
      ) : null}
      {issue.message}
    </>
  );
}

/**
 * The banner of a failed submission: the issues no field claims (`fields`
 * lists the paths the form's FieldErrors show), or the message when the error
 * has no issues. Nothing when every issue is at its field.
 */
export function FormErrors({
  failure,
  fields = [],
  look = "banner",
  lead,
  renderIssue,
  testId,
  itemTestId,
  style,
}: {
  failure: Failure | null;
  fields?: readonly string[];
  /** "banner": the console's alert box; "text": a plain line, as on the login-style pages. */
  look?: "banner" | "text";
  /** Opening words; with them the errors are always listed. */
  lead?: ReactNode;
  renderIssue?: (issue: ApiIssue) => ReactNode;
  testId?: string;
  itemTestId?: string;
  style?: CSSProperties;
}) {
  if (!failure?.error) return null;
  const items =
    failure.issues.length > 0
      ? failure.issues.filter((i) => !fields.some((f) => under(i.path, f)))
      : [{ path: "", message: failure.error }];
  if (items.length === 0) return null;
  const show = renderIssue ?? ((i: ApiIssue) => <IssueText issue={i} />);
  if (look === "text") {
    return (
      <p className="error" role="alert" data-testid={testId} style={style}>
        {items.map((i, n) => (
          <span key={n} data-testid={itemTestId}>
            {n > 0 ? " " : null}
            {show(i)}
          </span>
        ))}
      </p>
    );
  }
  return (
    <div className="alert alert-error" role="alert" data-testid={testId} style={style}>
      {lead}
      {lead ? " " : null}
      {lead || items.length > 1 ? (
        <ul>
          {items.map((i, n) => (
            <li key={n} data-testid={itemTestId}>
              {show(i)}
            </li>
          ))}
        </ul>
      ) : (
        <span data-testid={itemTestId}>{show(items[0]!)}</span>
      )}
    </div>
  );
}

/** A submit button that says what it is doing while the submission runs. */
export function SubmitButton({
  busy,
  label,
  busyLabel,
  variant = "primary",
  disabled = false,
}: {
  busy: boolean;
  label: string;
  busyLabel?: string;
  /** "plain": the unstyled button of the login-style pages. */
  variant?: "primary" | "secondary" | "plain";
  disabled?: boolean;
}) {
  return (
    <button
      type="submit"
      className={variant === "plain" ? undefined : `btn btn-${variant}`}
      disabled={busy || disabled}
    >
      {busy && busyLabel ? busyLabel : label}
    </button>
  );
}

/** The row under a form: submit (with its pending state) and, when there is somewhere to go back to, Cancel. */
export function FormActions({
  busy,
  submit,
  busyLabel,
  onCancel,
  cancelLabel = "Cancel",
  style,
}: {
  busy: boolean;
  submit: string;
  busyLabel?: string;
  onCancel?: () => void;
  cancelLabel?: string;
  style?: CSSProperties;
}) {
  return (
    <div className="form-actions" style={style}>
      <SubmitButton busy={busy} label={submit} busyLabel={busyLabel} />
      {onCancel ? (
        <button type="button" className="btn btn-secondary" onClick={onCancel}>
          {cancelLabel}
        </button>
      ) : null}
    </div>
  );
}
