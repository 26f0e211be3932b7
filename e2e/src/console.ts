// HTTP helpers for the admin API as the console and API clients use it:
// a next-auth credentials login that yields the session cookie, and JSON
// requests with either that cookie (plus the console's Origin) or a token.

export interface Caller {
  cookie?: string;
  token?: string;
}

/** Log in with email and password through next-auth; returns the session cookie. */
export async function login(url: string, email: string, password: string): Promise<string> {
  const csrf = await fetch(`${url}/api/auth/csrf`);
  const { csrfToken } = (await csrf.json()) as { csrfToken: string };
  const csrfCookie = csrf.headers
    .getSetCookie()
    .map((c) => c.split(";")[0])
    .join("; ");
  const res = await fetch(`${url}/api/auth/callback/credentials`, {
    method: "POST",
    redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded", cookie: csrfCookie, origin: url },
    body: new URLSearchParams({ csrfToken, email, password, json: "true" }),
  });
  const session = res.headers
    .getSetCookie()
    .map((c) => c.split(";")[0]!)
    .find((c) => c.includes("next-auth.session-token="));
  if (!session)
    throw new Error(`login as ${email} failed: HTTP ${res.status} ${res.headers.get("location")}`);
  return session;
}

export interface ApiResult<T = unknown> {
  status: number;
  body: T;
  headers: Headers;
}

export async function api<T = any>( // eslint-disable-line @typescript-eslint/no-explicit-any
  url: string,
  who: Caller | null,
  method: string,
  path: string,
  body?: unknown,
  extraHeaders: Record<string, string> = {},
): Promise<ApiResult<T>> {
  const headers: Record<string, string> = { ...extraHeaders };
  if (who?.cookie) {
    headers.cookie = who.cookie;
    headers.origin ??= url;
  }
  if (who?.token) headers.authorization = `Bearer ${who.token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(url + path, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed as T, headers: res.headers };
}

export const ADMIN_EMAIL = "ada@example.com";
export const ADMIN_PASSWORD = "correct horse battery staple";

/**
 * The server's first admin, made through the setup link it printed (which
 * works once), logged in: Ada, ada@example.com.
 */
export async function firstAdmin(url: string, setupLink: string | null): Promise<Caller> {
  const token = /token=([\w-]+)/.exec(setupLink ?? "")?.[1];
  if (!token) throw new Error("the server printed no setup link");
  const setup = await api(url, null, "POST", "/api/setup", {
    token,
    email: ADMIN_EMAIL,
    name: "Ada",
    password: ADMIN_PASSWORD,
  });
  if (setup.status !== 201) throw new Error(`setup failed: ${setup.status} ${JSON.stringify(setup.body)}`);
  return { cookie: await login(url, ADMIN_EMAIL, ADMIN_PASSWORD) };
}
