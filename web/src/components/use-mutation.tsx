"use client";

import { useRouter } from "next/navigation";
import { useCallback, useState } from "react";
import { api, issuesByPath, type ApiIssue, type Method, type ResponseSchema } from "./api";

export interface MutationState {
  busy: boolean;
  /** The server's message of the last failure. */
  error: string | null;
  issues: ApiIssue[];
  /** Field issues by path. */
  fields: Record<string, string>;
  /** Message of the last success. */
  success: string | null;
}

/**
 * One API call at a time with its outcome: on success the page's server data
 * is refreshed (router.refresh), on failure message and field issues are kept.
 */
export function useMutation() {
  const router = useRouter();
  const [state, setState] = useState<MutationState>({
    busy: false,
    error: null,
    issues: [],
    fields: {},
    success: null,
  });

  const run = useCallback(
    async <T,>(
      method: Exclude<Method, "GET">,
      url: string,
      schema: ResponseSchema<T>,
      body?: unknown,
      opts: { success?: string; refresh?: boolean } = {},
    ): Promise<{ ok: true; data: T } | { ok: false }> => {
      setState({ busy: true, error: null, issues: [], fields: {}, success: null });
      const res = await api(method, url, schema, body);
      if (!res.ok) {
        setState({
          busy: false,
          error: res.message,
          issues: res.issues,
          fields: issuesByPath(res.issues),
          success: null,
        });
        return { ok: false };
      }
      setState({ busy: false, error: null, issues: [], fields: {}, success: opts.success ?? null });
      if (opts.refresh !== false) router.refresh();
      return { ok: true, data: res.data };
    },
    [router],
  );

  const reset = useCallback(
    () => setState({ busy: false, error: null, issues: [], fields: {}, success: null }),
    [],
  );

  return { ...state, run, reset };
}

/** The mutation's outcome as an inline alert (error with its issues, or success). */
export function Outcome({ m, testId }: { m: MutationState; testId?: string }) {
  if (m.error) {
    return (
      <div className="alert alert-error" role="alert" data-testid={testId ? `${testId}-error` : undefined}>
        {m.error}
        {m.issues.length > 0 ? (
          <ul>
            {m.issues.map((i, n) => (
              <li key={n}>
                {i.path && i.path !== "(body)" ? <code>{i.path}</code> : null} {i.message}
              </li>
            ))}
          </ul>
        ) : null}
      </div>
    );
  }
  if (m.success) {
    return (
      <p className="alert alert-success" role="status" data-testid={testId ? `${testId}-ok` : undefined}>
        {m.success}
      </p>
    );
  }
  return null;
}
