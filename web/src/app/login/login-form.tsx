"use client";

import { signIn } from "next-auth/react";
import { useState, type FormEvent } from "react";

/** next-auth's generic error codes, in words a user can act on. */
const MESSAGES: Record<string, string> = {
  OAuthSignin: "could not start single sign-on; try again",
  OAuthCallback: "single sign-on did not complete; try again",
  OAuthAccountNotLinked: "this email is already used by another login method",
  Callback: "login did not complete; try again",
  AccessDenied: "access denied",
  CredentialsSignin: "wrong email or password",
  Configuration: "login is misconfigured on the server; see its log",
};

function describe(error: string): string {
  return MESSAGES[error] ?? error;
}

export function LoginForm(props: { next: string; oidcName: string | null; initialError: string | null }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(props.initialError ? describe(props.initialError) : null);

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    setBusy(true);
    setError(null);
    try {
      const res = await signIn("credentials", {
        email: String(form.get("email") ?? ""),
        password: String(form.get("password") ?? ""),
        redirect: false,
      });
      if (res?.ok && !res.error) {
        window.location.assign(props.next);
        return;
      }
      setError(describe(res?.error ?? "login failed"));
    } catch {
      setError("could not reach the server");
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="stack">
      {props.oidcName ? (
        <>
          <button
            type="button"
            className="button"
            data-testid="oidc-login"
            onClick={() => void signIn("oidc", { callbackUrl: props.next })}
          >
            Continue with {props.oidcName}
          </button>
          <p className="divider">or with a local account</p>
        </>
      ) : null}
      <form className="stack" onSubmit={submit}>
        <label>
          Email
          <input name="email" type="email" autoComplete="username" required autoFocus />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="current-password" required />
        </label>
        {error ? (
          <p className="error" role="alert" data-testid="login-error">
            {error}
          </p>
        ) : null}
        <button type="submit" disabled={busy}>
          {busy ? "Logging in…" : "Log in"}
        </button>
      </form>
    </div>
  );
}
