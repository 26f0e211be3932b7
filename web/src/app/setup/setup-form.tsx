"use client";

import { useEffect, useState, type FormEvent } from "react";
import { NewAccount } from "@trellis/proto/admin";
import { api, issuesByPath } from "@/components/api";

export function SetupForm() {
  const [token, setToken] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [issues, setIssues] = useState<Record<string, string>>({});
  const [done, setDone] = useState<string | null>(null);

  useEffect(() => {
    // The token travels in the URL fragment, which browsers never send to servers or logs.
    const fromHash = new URLSearchParams(window.location.hash.slice(1)).get("token");
    if (fromHash) setToken(fromHash);
  }, []);

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    setBusy(true);
    setError(null);
    setIssues({});
    const res = await api("POST", "/api/setup", NewAccount, {
      token: String(form.get("token") ?? ""),
      email: String(form.get("email") ?? ""),
      name: String(form.get("name") ?? ""),
      password: String(form.get("password") ?? ""),
    });
    setBusy(false);
    if (res.ok) {
      setDone(res.data.user.email);
      history.replaceState(null, "", "/setup");
      return;
    }
    setError(res.message);
    setIssues(issuesByPath(res.issues));
  }

  if (done) {
    return (
      <>
        <p data-testid="setup-success">
          Admin account <strong>{done}</strong> created.
        </p>
        <a className="button" href="/login">
          Log in
        </a>
      </>
    );
  }

  return (
    <form className="stack" onSubmit={submit} noValidate>
      <label>
        Setup token
        <input
          name="token"
          value={token}
          onChange={(e) => setToken(e.target.value)}
          autoComplete="off"
          required
        />
        {issues.token ? <span className="field-error">{issues.token}</span> : null}
      </label>
      <label>
        Name
        <input name="name" autoComplete="name" required />
        {issues.name ? <span className="field-error">{issues.name}</span> : null}
      </label>
      <label>
        Email
        <input name="email" type="email" autoComplete="email" required />
        {issues.email ? <span className="field-error">{issues.email}</span> : null}
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
      <button type="submit" disabled={busy}>
        {busy ? "Creating…" : "Create admin account"}
      </button>
    </form>
  );
}
