"use client";

import { useEffect, useState, type FormEvent } from "react";
import { InvitationPreview, NewAccount } from "@trellis/proto/admin";
import { api, issuesByPath } from "@/components/api";

export function InviteForm() {
  const [token, setToken] = useState<string | null>(null);
  const [invite, setInvite] = useState<InvitationPreview | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [issues, setIssues] = useState<Record<string, string>>({});
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
    void api("POST", "/api/invitations/peek", InvitationPreview, { token: t }).then((res) => {
      if (res.ok) setInvite(res.data);
      else setError(res.message);
    });
  }, []);

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    setBusy(true);
    setError(null);
    setIssues({});
    const res = await api("POST", "/api/invitations/accept", NewAccount, {
      token,
      name: String(form.get("name") ?? ""),
      password: String(form.get("password") ?? ""),
    });
    setBusy(false);
    if (res.ok) {
      setDone(true);
      history.replaceState(null, "", "/invite");
      return;
    }
    setError(res.message);
    setIssues(issuesByPath(res.issues));
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
