"use client";

import { useEffect, useState, type FormEvent } from "react";

type Issues = Record<string, string>;

export function SetupForm() {
  const [token, setToken] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [issues, setIssues] = useState<Issues>({});
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
    try {
      const res = await fetch("/api/setup", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          token: String(form.get("token") ?? ""),
          email: String(form.get("email") ?? ""),
          name: String(form.get("name") ?? ""),
          password: String(form.get("password") ?? ""),
        }),
      });
      const body = (await res.json()) as {
        user?: { email: string };
        message?: string;
        issues?: { path: string; message: string }[];
      };
      if (res.ok && body.user) {
        setDone(body.user.email);
        history.replaceState(null, "", "/setup");
        return;
      }
      setError(body.message ?? `setup failed (${res.status})`);
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
