"use client";

import { signIn } from "next-auth/react";
import { useEffect, useState, type FormEvent } from "react";
import { describeLoginFailure, parseLoginError, type LoginFailure } from "@/lib/login-params";

/** A failed sign-in of this very form (not from a URL someone sent), and when its wait ends. */
interface Failure {
  failure: LoginFailure;
  /** Epoch ms when the next try may start; 0: at once. */
  until: number;
}

export function LoginForm(props: { next: string; oidcName: string | null; initialError: string | null }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(props.initialError);
  const [failed, setFailed] = useState<Failure | null>(null);
  const [now, setNow] = useState(() => Date.now());
  const waitLeft = failed ? Math.max(0, failed.until - now) : 0;

  // While a wait runs, count it down once a second (the message says what is left).
  useEffect(() => {
    if (!failed || failed.until <= Date.now()) return;
    const timer = setInterval(() => {
      const t = Date.now();
      setNow(t);
      if (t >= failed.until) clearInterval(timer);
    }, 1000);
    return () => clearInterval(timer);
  }, [failed]);

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    setBusy(true);
    setError(null);
    setFailed(null);
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
      const failure = parseLoginError(res?.error ?? "");
      const t = Date.now();
      setNow(t);
      setFailed({ failure, until: failure.waitMs ? t + failure.waitMs : 0 });
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
        {failed || error ? (
          <p
            className="error"
            role="alert"
            data-testid="login-error"
            data-waiting={waitLeft > 0 ? "true" : undefined}
          >
            {failed ? describeLoginFailure(failed.failure, waitLeft) : error}
          </p>
        ) : null}
        <button type="submit" disabled={busy || waitLeft > 0}>
          {busy ? "Logging in…" : "Log in"}
        </button>
      </form>
    </div>
  );
}
