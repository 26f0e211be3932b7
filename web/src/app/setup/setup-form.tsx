"use client";

import { signIn } from "next-auth/react";
import { useEffect, useState, type FormEvent } from "react";
import { NewAccount } from "@trellis/proto/admin";
import { FieldError, FormErrors, SubmitButton } from "@/components/form";
import { useMutation } from "@/components/use-mutation";

const FIELDS = ["token", "name", "email", "password"];

export function SetupForm() {
  const mut = useMutation();
  const [token, setToken] = useState("");
  const [done, setDone] = useState<string | null>(null);

  useEffect(() => {
    // The token travels in the URL fragment, which browsers never send to servers or logs.
    const fromHash = new URLSearchParams(window.location.hash.slice(1)).get("token");
    if (fromHash) setToken(fromHash);
  }, []);

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    const email = String(form.get("email") ?? "");
    const password = String(form.get("password") ?? "");
    const res = await mut.run(
      "POST",
      "/api/setup",
      NewAccount,
      {
        token: String(form.get("token") ?? ""),
        email,
        name: String(form.get("name") ?? ""),
        password,
      },
      { refresh: false },
    );
    if (res.ok) {
      setDone(res.data.user.email);
      history.replaceState(null, "", "/setup");
      // The admin just typed these: log in with them instead of asking again.
      // If that fails (it should not), the Log in link below still works.
      const login = await signIn("credentials", { email, password, redirect: false }).catch(() => null);
      if (login?.ok && !login.error) window.location.assign("/machines");
    }
  }

  if (done) {
    return (
      <>
        <p data-testid="setup-success">
          Admin account <strong>{done}</strong> created. Logging you in…
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
        <FieldError issues={mut.issues} path="token" />
      </label>
      <label>
        Name
        <input name="name" autoComplete="name" required />
        <FieldError issues={mut.issues} path="name" />
      </label>
      <label>
        Email
        <input name="email" type="email" autoComplete="email" required />
        <FieldError issues={mut.issues} path="email" />
      </label>
      <label>
        Password
        <input name="password" type="password" autoComplete="new-password" minLength={12} required />
        <FieldError issues={mut.issues} path="password" />
      </label>
      <FormErrors failure={mut} fields={FIELDS} look="text" />
      <SubmitButton busy={mut.busy} label="Create admin account" busyLabel="Creating…" variant="plain" />
    </form>
  );
}
