"use client";

import { useEffect, useState, type FormEvent } from "react";
import { InvitationPreview, NewAccount } from "@trellis/proto/admin";
import { api } from "@/components/api";
import { FieldError, FormErrors, SubmitButton } from "@/components/form";
import { useMutation } from "@/components/use-mutation";

const FIELDS = ["name", "password"];

export function InviteForm() {
  const mut = useMutation();
  const [token, setToken] = useState<string | null>(null);
  const [invite, setInvite] = useState<InvitationPreview | null>(null);
  // Why the link cannot be used; until it is read, the form cannot be sent.
  const [linkError, setLinkError] = useState<string | null>(null);
  const [done, setDone] = useState(false);

  useEffect(() => {
    // The token travels in the URL fragment, which browsers never send to servers or logs.
    const t = new URLSearchParams(window.location.hash.slice(1)).get("token");
    setToken(t);
    if (!t) {
      setLinkError("this link has no invitation token; ask your admin for a new one");
      return;
    }
    void api("POST", "/api/invitations/peek", InvitationPreview, { token: t }).then((res) => {
      if (res.ok) setInvite(res.data);
      else setLinkError(res.message);
    });
  }, []);

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    const res = await mut.run(
      "POST",
      "/api/invitations/accept",
      NewAccount,
      { token, name: String(form.get("name") ?? ""), password: String(form.get("password") ?? "") },
      { refresh: false },
    );
    if (res.ok) {
      setDone(true);
      history.replaceState(null, "", "/invite");
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
        <FieldError issues={mut.issues} path="name" />
      </label>
      <label>
        Password
        <input name="password" type="password" autoComplete="new-password" minLength={12} required />
        <FieldError issues={mut.issues} path="password" />
      </label>
      <FormErrors failure={linkError ? { error: linkError, issues: [] } : mut} fields={FIELDS} look="text" />
      <SubmitButton
        busy={mut.busy}
        label="Create account"
        busyLabel="Creating…"
        variant="plain"
        disabled={!invite}
      />
    </form>
  );
}
