// Client-side calls to the admin HTTP API: same origin, cookie auth, JSON. Every
// error body has the shape { error, message, issues? } (see @trellis/proto ApiError).

export interface ApiIssue {
  path: string;
  message: string;
  line?: number;
  column?: number;
}

export type ApiResult<T> =
  | { ok: true; status: number; data: T }
  | { ok: false; status: number; error: string; message: string; issues: ApiIssue[] };

export async function api<T = unknown>(
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE",
  url: string,
  body?: unknown,
  init?: { signal?: AbortSignal },
): Promise<ApiResult<T>> {
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      credentials: "same-origin",
      headers:
        body === undefined
          ? { accept: "application/json" }
          : { "content-type": "application/json", accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: init?.signal,
    });
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    return { ok: false, status: 0, error: "network", message: "Could not reach the server.", issues: [] };
  }
  const text = await res.text().catch(() => "");
  let parsed: unknown = null;
  if (text) {
    try {
      parsed = JSON.parse(text) as unknown;
    } catch {
      parsed = null;
    }
  }
  if (res.ok) return { ok: true, status: res.status, data: parsed as T };
  const b = (parsed ?? {}) as { error?: unknown; message?: unknown; issues?: unknown };
  return {
    ok: false,
    status: res.status,
    error: typeof b.error === "string" ? b.error : `http_${res.status}`,
    message:
      typeof b.message === "string"
        ? b.message
        : res.status === 401
          ? "Your session has ended; log in again."
          : `The request failed (HTTP ${res.status}).`,
    issues: Array.isArray(b.issues) ? (b.issues as ApiIssue[]) : [],
  };
}

/** Field issues by path ("name", "nameservers.1", …); the first message per path wins. */
export function issuesByPath(issues: ApiIssue[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const i of issues) if (!(i.path in out)) out[i.path] = i.message;
  return out;
}

/** Issues no field on the form claims, to list under the form's message. */
export function otherIssues(issues: ApiIssue[], fields: readonly string[]): ApiIssue[] {
  return issues.filter((i) => !fields.some((f) => i.path === f || i.path.startsWith(f + ".")));
}
