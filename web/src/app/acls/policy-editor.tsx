"use client";

// The policy editor: CodeMirror 6, loaded in the browser only (dynamic import
// inside an effect, so the server render and the first paint show the text in
// a <pre> and nothing of CodeMirror runs during SSR).
//
// For tests: the element with data-testid="policy-editor" carries the
// EditorView as `__view` and a helper `__setText(text)` that replaces the whole
// document; it gets data-ready="true" once the editor is live. E.g. in
// Playwright:
//   await page.locator('[data-testid=policy-editor][data-ready=true]').waitFor();
//   await page.evaluate((t) => document.querySelector('[data-testid=policy-editor]').__setText(t), text);
//   await page.getByRole("button", { name: "Save policy" }).click();

import type { Diagnostic } from "@codemirror/lint";
import type { Text } from "@codemirror/state";
import type { EditorView } from "@codemirror/view";
import { useRouter } from "next/navigation";
import { useCallback, useEffect, useRef, useState } from "react";
import { PolicyValidation, SavedPolicy } from "@trellis/proto/admin";
import { api, type ApiIssue } from "@/components/api";
import { FormErrors } from "@/components/form";

interface EditorHost extends HTMLDivElement {
  __view?: EditorView;
  __setText?: (text: string) => void;
}

/** The issue's place in the document as a CodeMirror range (the token at line:column). */
function issueRange(doc: Text, issue: ApiIssue): { from: number; to: number } {
  if (!issue.line || issue.line < 1 || issue.line > doc.lines) return { from: 0, to: 0 };
  const line = doc.line(issue.line);
  const from = Math.min(line.to, line.from + Math.max(0, (issue.column ?? 1) - 1));
  const rest = doc.sliceString(from, line.to);
  const token = /^("(?:[^"\\]|\\.)*"|[^\s,:\]}]+)/.exec(rest);
  return { from, to: Math.min(line.to, from + Math.max(1, token ? token[0].length : 1)) };
}

function toDiagnostics(doc: Text, v: PolicyValidation): Diagnostic[] {
  if (v.ok) return [];
  const issues = v.issues.length ? v.issues : [{ path: "", message: v.message }];
  return issues.map((i) => ({
    ...issueRange(doc, i),
    severity: "error" as const,
    message: i.path ? `${i.path}: ${i.message}` : i.message,
    source: "policy",
  }));
}

function where(i: ApiIssue): string | null {
  if (!i.line) return null;
  return i.column ? `line ${i.line}, column ${i.column}` : `line ${i.line}`;
}

export function PolicyEditor({
  text,
  version,
  readOnly,
}: {
  text: string;
  version: number;
  readOnly: boolean;
}) {
  const router = useRouter();
  const hostRef = useRef<EditorHost>(null);
  const viewRef = useRef<EditorView | null>(null);
  const [ready, setReady] = useState(false);
  const [loadError, setLoadError] = useState<string | null>(null);
  // The version the edit started from, and its text (to tell whether the editor is dirty).
  const [base, setBase] = useState({ version, text });
  const baseRef = useRef(base);
  baseRef.current = base;
  const [dirty, setDirty] = useState(false);
  const [busy, setBusy] = useState(false);
  const [errors, setErrors] = useState<{ error: string; issues: ApiIssue[] } | null>(null);
  const [conflict, setConflict] = useState<string | null>(null);
  const [saved, setSaved] = useState<number | null>(null);
  const initial = useRef({ text, readOnly });
  const saveRef = useRef<() => void>(() => {});

  const replaceText = useCallback((next: string) => {
    const view = viewRef.current;
    if (!view) return;
    view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: next } });
  }, []);

  // Mount CodeMirror once.
  useEffect(() => {
    let cancelled = false;
    let view: EditorView | null = null;
    const host = hostRef.current;
    (async () => {
      const [
        { EditorView: View, basicSetup },
        { EditorState, Prec },
        { keymap },
        { json },
        { linter, lintGutter },
        { HighlightStyle, syntaxHighlighting },
        { tags: t },
      ] = await Promise.all([
        import("codemirror"),
        import("@codemirror/state"),
        import("@codemirror/view"),
        import("@codemirror/lang-json"),
        import("@codemirror/lint"),
        // Both come with `codemirror`; used for colours that follow the console's theme.
        import("@codemirror/language"),
        import("@lezer/highlight"),
      ]);
      // Colours from CSS variables, so light, dark and the theme switch apply without rebuilding the editor.
      const themed = [
        View.theme({
          "&": { color: "var(--text)", backgroundColor: "var(--panel)" },
          ".cm-content": { caretColor: "var(--text)" },
          ".cm-cursor, .cm-dropCursor": { borderLeftColor: "var(--text)" },
          "&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground, .cm-selectionBackground, .cm-content ::selection":
            { backgroundColor: "var(--cm-selection)" },
          ".cm-activeLine": { backgroundColor: "var(--cm-active-line)" },
          ".cm-activeLineGutter": { backgroundColor: "var(--cm-active-line)", color: "var(--text)" },
          ".cm-gutters": {
            backgroundColor: "var(--panel-2)",
            color: "var(--muted)",
            borderRight: "1px solid var(--border)",
          },
          ".cm-matchingBracket, &.cm-focused .cm-matchingBracket": { backgroundColor: "var(--cm-selection)" },
          ".cm-tooltip": {
            backgroundColor: "var(--panel)",
            color: "var(--text)",
            border: "1px solid var(--border)",
          },
          ".cm-panels": { backgroundColor: "var(--panel-2)", color: "var(--text)" },
          ".cm-searchMatch": { backgroundColor: "var(--warn-soft)", outline: "1px solid var(--warn)" },
        }),
        syntaxHighlighting(
          HighlightStyle.define([
            { tag: t.propertyName, color: "var(--hl-prop)" },
            { tag: t.string, color: "var(--hl-string)" },
            { tag: t.number, color: "var(--hl-number)" },
            { tag: [t.bool, t.null, t.keyword], color: "var(--hl-keyword)" },
            { tag: [t.comment, t.lineComment, t.blockComment], color: "var(--muted)", fontStyle: "italic" },
            { tag: [t.brace, t.squareBracket, t.separator, t.punctuation], color: "var(--muted)" },
          ]),
        ),
      ];
      if (cancelled || !host) return;
      const { text: startText, readOnly: ro } = initial.current;

      // Lint with the server's validator (it understands HuJSON comments and
      // trailing commas, and checks meaning), not a JSON linter.
      let inflight: AbortController | null = null;
      const policyLinter = linter(
        async (v) => {
          inflight?.abort();
          const ac = new AbortController();
          inflight = ac;
          const doc = v.state.doc;
          try {
            const res = await api(
              "POST",
              "/api/v1/policy/validate",
              PolicyValidation,
              { text: doc.toString() },
              { signal: ac.signal },
            );
            if (res.ok) return toDiagnostics(doc, res.data);
            if (res.status === 400)
              return toDiagnostics(doc, { ok: false, message: res.message, issues: res.issues });
            return [];
          } catch {
            return [];
          }
        },
        { delay: 500 },
      );

      view = new View({
        parent: host,
        state: EditorState.create({
          doc: startText,
          extensions: [
            basicSetup,
            json(),
            themed,
            lintGutter(),
            ...(ro ? [EditorState.readOnly.of(true)] : [policyLinter]),
            Prec.high(
              keymap.of([
                {
                  key: "Mod-s",
                  preventDefault: true,
                  run: () => {
                    saveRef.current();
                    return true;
                  },
                },
              ]),
            ),
            View.contentAttributes.of({ "aria-label": "Policy file" }),
            View.updateListener.of((u) => {
              if (u.docChanged) setDirty(u.state.doc.toString() !== baseRef.current.text);
            }),
          ],
        }),
      });
      viewRef.current = view;
      host.__view = view;
      host.__setText = (t: string) => replaceText(t);
      host.dataset.ready = "true";
      setReady(true);
    })().catch((err: unknown) => {
      if (!cancelled) setLoadError(err instanceof Error ? err.message : "the editor failed to load");
    });
    return () => {
      cancelled = true;
      view?.destroy();
      viewRef.current = null;
      if (host) {
        delete host.__view;
        delete host.__setText;
        delete host.dataset.ready;
      }
    };
  }, [replaceText]);

  // A newer version arrived (our save, a restore, or someone else's save via the
  // live feed): take it when there is nothing unsaved here; otherwise say so.
  const [remote, setRemote] = useState<{ version: number; text: string } | null>(null);
  useEffect(() => {
    if (version === baseRef.current.version) return;
    const view = viewRef.current;
    const current = view ? view.state.doc.toString() : baseRef.current.text;
    if (current === baseRef.current.text || current === text) {
      setBase({ version, text });
      baseRef.current = { version, text };
      if (current !== text) replaceText(text);
      setDirty(false);
      setRemote(null);
    } else {
      setRemote({ version, text });
    }
  }, [version, text, replaceText]);

  const save = useCallback(async () => {
    const view = viewRef.current;
    if (!view || readOnly || busy) return;
    const body = view.state.doc.toString();
    setBusy(true);
    setErrors(null);
    setConflict(null);
    setSaved(null);
    const res = await api("PUT", "/api/v1/policy", SavedPolicy, {
      text: body,
      baseVersion: baseRef.current.version,
    });
    setBusy(false);
    if (res.ok) {
      const next = { version: res.data.version, text: body };
      baseRef.current = next;
      setBase(next);
      setDirty(false);
      setSaved(res.data.version);
      router.refresh();
      return;
    }
    if (res.status === 409) {
      setConflict(res.message);
      router.refresh();
      return;
    }
    setErrors({ error: res.message, issues: res.issues });
  }, [readOnly, busy, router]);
  saveRef.current = () => void save();

  function jumpTo(i: ApiIssue) {
    const view = viewRef.current;
    if (!view) return;
    const { from } = issueRange(view.state.doc, i);
    view.dispatch({ selection: { anchor: from }, scrollIntoView: true });
    view.focus();
  }

  return (
    <div className="policy-editor">
      <div className="row" style={{ marginBottom: "0.5rem" }}>
        <span className="muted small">
          Version {base.version}
          {dirty ? " · unsaved changes" : ""}
          {readOnly ? " · read only" : ""}
        </span>
        <span className="spacer" />
        {!readOnly ? (
          <>
            <button
              type="button"
              className="btn btn-secondary btn-sm"
              disabled={!ready || !dirty || busy}
              onClick={() => {
                replaceText(base.text);
                setErrors(null);
              }}
            >
              Discard changes
            </button>
            <button
              type="button"
              className="btn btn-primary btn-sm"
              disabled={!ready || busy}
              onClick={() => void save()}
              title="Save (Ctrl+S)"
            >
              {busy ? "Saving…" : "Save policy"}
            </button>
          </>
        ) : null}
      </div>

      {remote ? (
        <div className="alert alert-warn" role="status" style={{ marginBottom: "0.5rem" }}>
          Version {remote.version} of the policy was saved elsewhere while you were editing.{" "}
          <button
            type="button"
            className="btn-link"
            onClick={() => {
              baseRef.current = remote;
              setBase(remote);
              replaceText(remote.text);
              setDirty(false);
              setRemote(null);
              setConflict(null);
            }}
          >
            Discard my changes and load it
          </button>{" "}
          or{" "}
          <button
            type="button"
            className="btn-link"
            onClick={() => {
              // Keep the edit; the next save replaces the newer version on purpose.
              baseRef.current = remote;
              setBase(remote);
              const view = viewRef.current;
              setDirty(view ? view.state.doc.toString() !== remote.text : true);
              setRemote(null);
              setConflict(null);
            }}
          >
            keep my changes and save over it
          </button>
          .
        </div>
      ) : null}

      <div className="editor">
        <div ref={hostRef} data-testid="policy-editor" />
        {!ready ? (
          <pre className="editor-fallback" aria-busy={!loadError}>
            {text}
          </pre>
        ) : null}
      </div>
      {loadError ? (
        <p className="alert alert-error" role="alert">
          The editor could not load: {loadError}
        </p>
      ) : null}

      <div aria-live="polite" style={{ marginTop: "0.75rem" }}>
        {saved !== null && !dirty ? (
          <p className="alert alert-success" data-testid="policy-saved">
            Saved as version {saved}.
          </p>
        ) : null}
        {conflict ? (
          <p className="alert alert-error" role="alert" data-testid="policy-conflict">
            {conflict}
          </p>
        ) : null}
        {/* The message lists the issues again, one per line: only the issues are shown. */}
        <FormErrors
          failure={errors}
          lead={<strong>The policy was not saved.</strong>}
          testId="policy-errors"
          itemTestId="policy-error"
          renderIssue={(i) => (
            <>
              {where(i) ? (
                <button type="button" className="btn-link" onClick={() => jumpTo(i)}>
                  {where(i)}
                </button>
              ) : null}
              {where(i) ? ": " : null}
              {i.path ? <code>{i.path}</code> : null}
              {i.path ? " " : null}
              {i.message}
            </>
          )}
        />
      </div>
    </div>
  );
}
