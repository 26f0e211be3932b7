"use client";

import { useState, type FormEvent } from "react";
import { CreatedInvitation, type Role } from "@trellis/proto/admin";
import { CopyButton } from "@/components/copy-button";
import { FieldError, FormErrors, hasFieldError, SubmitButton } from "@/components/form";
import { useMutation } from "@/components/use-mutation";

/** The request's fields this form shows errors at (the link's lifetime is a fixed choice). */
const FIELDS = ["email", "role"];

const EXPIRIES = [
  { hours: 24, label: "1 day" },
  { hours: 72, label: "3 days" },
  { hours: 7 * 24, label: "7 days" },
  { hours: 30 * 24, label: "30 days" },
];

export function InviteForm() {
  const mut = useMutation();
  const [created, setCreated] = useState<{ email: string; url: string } | null>(null);

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = e.currentTarget;
    const data = new FormData(form);
    const res = await mut.run("POST", "/api/v1/invitations", CreatedInvitation, {
      email: String(data.get("email") ?? "").trim(),
      role: String(data.get("role") ?? "member") as Role,
      expiresInHours: Number(data.get("expiresInHours") ?? 72),
    });
    if (res.ok) {
      setCreated({ email: res.data.invitation.email, url: res.data.url });
      form.reset();
    }
  }

  return (
    <div className="panel">
      <h3>Invite user</h3>
      <form className="form-row" onSubmit={submit} noValidate>
        <label>
          Email
          <input
            name="email"
            type="email"
            required
            autoComplete="off"
            aria-invalid={hasFieldError(mut.issues, "email")}
          />
          <FieldError issues={mut.issues} path="email" />
        </label>
        <label style={{ flex: "0 1 10rem" }}>
          Role
          <select name="role" defaultValue="member">
            <option value="member">member</option>
            <option value="auditor">auditor</option>
            <option value="admin">admin</option>
          </select>
          <FieldError issues={mut.issues} path="role" />
        </label>
        <label style={{ flex: "0 1 9rem" }}>
          Link valid for
          <select name="expiresInHours" defaultValue="72">
            {EXPIRIES.map((x) => (
              <option key={x.hours} value={x.hours}>
                {x.label}
              </option>
            ))}
          </select>
        </label>
        <SubmitButton busy={mut.busy} label="Invite" busyLabel="Inviting…" />
      </form>
      <FormErrors failure={mut} fields={FIELDS} style={{ marginTop: "0.75rem" }} />
      {created ? (
        <div className="secret-panel" style={{ marginTop: "1rem" }} data-testid="invite-created">
          <h3>Invitation for {created.email}</h3>
          <p className="small" style={{ margin: 0 }}>
            Send this link to them. It is shown only once and works once.
          </p>
          <div className="secret">
            <code data-testid="invite-url">{created.url}</code>
            <CopyButton value={created.url} what="invite link" className="btn btn-secondary btn-sm" />
          </div>
          <div>
            <button type="button" className="btn btn-ghost btn-sm" onClick={() => setCreated(null)}>
              Done
            </button>
          </div>
        </div>
      ) : null}
    </div>
  );
}
