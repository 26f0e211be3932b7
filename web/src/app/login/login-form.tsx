"use client";

import { signIn } from "next-auth/react";
import { useState, type FormEvent } from "react";
import { knownLoginError } from "@/lib/login-params";

/**
 * A failed signIn's error, from the server's answer to this very request (not
 * from a URL someone sent): a known code in words, else the server's message.
 */
function describe(error: string): string {
  return knownLoginError(error) ?? error;
}

export function LoginForm(props: { next: string; oidcName: string | null; initialError: string | null }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(props.initialError);

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
