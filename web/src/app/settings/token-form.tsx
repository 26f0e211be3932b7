"use client";

import { useState, type FormEvent } from "react";
import { CreatedApiToken, type Scope } from "@trellis/proto/admin";
import { CopyButton } from "@/components/copy-button";
import { FieldError, FormActions, FormErrors } from "@/components/form";
import { useMutation } from "@/components/use-mutation";

const EXPIRIES = [7, 30, 90, 180, 365];

/** The request's fields this form shows errors at (the expiry is a fixed choice). */
const FIELDS = ["description", "scopes"];

/** Create an API token with a subset of the caller's scopes; the token is shown once. */
export function TokenForm({ scopes }: { scopes: Scope[] }) {
  const mut = useMutation();
  const [open, setOpen] = useState(false);
  const [created, setCreated] = useState<CreatedApiToken | null>(null);
  const readScopes = scopes.filter((s) => s.endsWith(":read"));

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = e.currentTarget;
    const data = new FormData(form);
    const res = await mut.run("POST", "/api/v1/tokens", CreatedApiToken, {
      description: String(data.get("description") ?? "").trim(),
      scopes: data.getAll("scopes").map(String),
      expiresInDays: Number(data.get("expiresInDays") ?? 90),
    });
    if (res.ok) {
      setCreated(res.data);
      setOpen(false);
      form.reset();
    }
  }

  return (
    <>
      {created ? (
        <div className="secret-panel" data-testid="new-token">
          <h3>New API token{created.info.description ? `: ${created.info.description}` : ""}</h3>
          <p className="alert alert-warn" role="status">
            Copy it now: it will not be shown again.
          </p>
          <div className="secret">
            <code data-testid="new-token-value">{created.token}</code>
            <CopyButton value={created.token} what="API token" className="btn btn-secondary btn-sm" />
          </div>
          <div>
            <button type="button" className="btn btn-ghost btn-sm" onClick={() => setCreated(null)}>
              Done
            </button>
          </div>
        </div>
      ) : null}
      {!open ? (
        <div className="form-actions" style={{ marginTop: created ? "1rem" : 0 }}>
          <button
            type="button"
            className="btn btn-primary"
            onClick={() => {
              mut.reset();
              setOpen(true);
            }}
            data-testid="create-token"
          >
            Create token…
          </button>
        </div>
      ) : (
        <form
          className="panel form-grid"
          onSubmit={submit}
          noValidate
          aria-labelledby="token-title"
          style={{ maxWidth: "44rem" }}
        >
          <h3 id="token-title">Create an API token</h3>
          <label>
            Description
            <input name="description" maxLength={200} placeholder="e.g. Terraform" autoComplete="off" />
            <FieldError issues={mut.issues} path="description" />
          </label>
          <fieldset>
            <legend>Scopes</legend>
            <div className="row" style={{ marginBottom: "0.5rem" }}>
              <button
                type="button"
                className="btn btn-ghost btn-xs"
                onClick={(e) => {
                  const fs = e.currentTarget.closest("fieldset");
                  fs?.querySelectorAll<HTMLInputElement>('input[name="scopes"]').forEach((c) => {
                    c.checked = readScopes.includes(c.value as Scope);
                  });
                }}
              >
                Read only
              </button>
              <button
                type="button"
                className="btn btn-ghost btn-xs"
                onClick={(e) => {
                  const fs = e.currentTarget.closest("fieldset");
                  fs?.querySelectorAll<HTMLInputElement>('input[name="scopes"]').forEach((c) => {
                    c.checked = true;
                  });
                }}
              >
                All
              </button>
            </div>
            <div className="checks">
              {scopes.map((s) => (
                <label className="check" key={s}>
                  <input type="checkbox" name="scopes" value={s} />
                  <code>{s}</code>
                </label>
              ))}
            </div>
            <FieldError issues={mut.issues} path="scopes" block />
          </fieldset>
          <label style={{ maxWidth: "12rem" }}>
            Expires after
            <select name="expiresInDays" defaultValue="90">
              {EXPIRIES.map((d) => (
                <option key={d} value={d}>
                  {d} days
                </option>
              ))}
            </select>
          </label>
          <FormErrors failure={mut} fields={FIELDS} />
          <FormActions
            busy={mut.busy}
            submit="Create token"
            busyLabel="Creating…"
            onCancel={() => setOpen(false)}
          />
        </form>
      )}
    </>
  );
}
