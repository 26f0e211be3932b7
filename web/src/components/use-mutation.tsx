"use client";

import { useRouter } from "next/navigation";
import { useCallback, useState } from "react";
import { api, type ApiIssue, type Method, type ResponseSchema } from "./api";
import { FormErrors } from "./form";

export interface MutationState {
  busy: boolean;
  /** The server's message of the last failure. */
  error: string | null;
  /** Per-field issues of the last failure. */
  issues: ApiIssue[];
  /** Message of the last success. */
  success: string | null;
}

const IDLE: MutationState = { busy: false, error: null, issues: [], success: null };

/**
 * One API call at a time with its outcome: on success the page's server data
 * is refreshed (router.refresh), on failure message and field issues are kept.
 */
export function useMutation() {
  const router = useRouter();
  const [state, setState] = useState<MutationState>(IDLE);

  const run = useCallback(
    async <T,>(
      method: Exclude<Method, "GET">,
      url: string,
      schema: ResponseSchema<T>,
      body?: unknown,
      opts: { success?: string; refresh?: boolean } = {},
    ): Promise<{ ok: true; data: T } | { ok: false }> => {
      setState({ ...IDLE, busy: true });
      const res = await api(method, url, schema, body);
      if (!res.ok) {
        setState({ busy: false, error: res.message, issues: res.issues, success: null });
        return { ok: false };
      }
      setState({ ...IDLE, success: opts.success ?? null });
      if (opts.refresh !== false) router.refresh();
      return { ok: true, data: res.data };
    },
    [router],
  );

  const reset = useCallback(() => setState(IDLE), []);

  return { ...state, run, reset };
}

/**
 * The mutation's outcome as an inline alert: its errors (each once; `fields`
 * names the paths the form shows at its fields) or its success.
 */
export function Outcome({
  m,
  fields,
  testId,
}: {
  m: MutationState;
  fields?: readonly string[];
  testId?: string;
}) {
  if (m.error)
    return <FormErrors failure={m} fields={fields} testId={testId ? `${testId}-error` : undefined} />;
  if (m.success) {
    return (
      <p className="alert alert-success" role="status" data-testid={testId ? `${testId}-ok` : undefined}>
        {m.success}
      </p>
    );
  }
  return null;
}
