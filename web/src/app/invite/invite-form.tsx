"use client";

import { useEffect, useState, type FormEvent } from "react";

type Issues = Record<string, string>;

export function InviteForm() {
  const [token, setToken] = useState<string | null>(null);
  const [invite, setInvite] = useState<{ email: string; role: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [issues, setIssues] = useState<Issues>({});
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState(false);

  useEffect(() => {
    // The token travels in the URL fragment, which browsers never send to servers or logs.
    const t = new URLSearchParams(window.location.hash.slice(1)).get("token");
    setToken(t);
    if (!t) {
      setError("this link has no invitation token; ask your admin for a new one");
      return;
    }
    fetch("/api/invitations/peek", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: t }),
    })
      .then(async (res) => {
        const body = (await res.json()) as { email?: string; role?: string; message?: string };
        if (res.ok && body.email) setInvite({ email: body.email, role: body.role ?? "member" });
        else setError(body.message ?? "this invitation is not valid");
      })
      .catch(() => setError("could not reach the server"));
  }, []);

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    setBusy(true);
    setError(null);
    setIssues({});
    try {
      const res = await fetch("/api/invitations/accept", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          token,
          name: String(form.get("name") ?? ""),
          password: String(form.get("password") ?? ""),
        }),
      });
      const body = (await res.json()) as { message?: string; issues?: { path: string; message: string }[] };
      if (res.ok) {
        setDone(true);
        history.replaceState(null, "", "/invite");
        return;
      }
      setError(body.message ?? `failed (${res.status})`);
      setIssues(Object.fromEntries((body.issues ?? []).map((i) => [i.path, i.message])));
    } catch {
      setError("could not reach the server");
    } finally {
      setBusy(false);
    }
  }

  if (done) {
    return (
      <>
        <p data-testid="invite-success">Your account is ready.</p>
        <a className="button" href="/login">
          Log in
        </a>
      </>
    );
  }
  return (
    <form className="stack" onSubmit={submit}>
      {invite ? (
        <p>
          Invitation for <strong>{invite.email}</strong> as <strong>{invite.role}</strong>.
        </p>
      ) : null}
      <label>
        Name
        <input name="name" autoComplete="name" required />
        {issues.name ? <span className="field-error">{issues.name}</span> : null}
      </label>
      <label>
        Password
        <input name="password" type="password" autoComplete="new-password" minLength={12} required />
        {issues.password ? <span className="field-error">{issues.password}</span> : null}
      </label>
      {error ? (
        <p className="error" role="alert">
          {error}
        </p>
      ) : null}
      <button type="submit" disabled={busy || !invite}>
        {busy ? "Creating…" : "Create account"}
      </button>
    </form>
  );
}
