"use client";

import { useState, type FormEvent } from "react";
import { CreatedPreAuthKey, type CreatePreAuthKeyRequest } from "@trellis/proto/admin";
import { CopyButton } from "@/components/copy-button";
import { FieldError, FormActions, FormErrors } from "@/components/form";
import { useMutation } from "@/components/use-mutation";

/** The request's fields this form shows errors at (the owner is not a field: it is the caller or the tags). */
const FIELDS = ["tags", "expiresInSeconds"];

const EXPIRIES = [
  { seconds: 3600, label: "1 hour" },
  { seconds: 24 * 3600, label: "1 day" },
  { seconds: 7 * 24 * 3600, label: "7 days" },
  { seconds: 30 * 24 * 3600, label: "30 days" },
  { seconds: 90 * 24 * 3600, label: "90 days" },
];

/**
 * "Generate key": an untagged key registers machines owned by the caller; a
 * tagged key registers tagged machines. The key is shown once.
 */
export function KeyForm({
  loginServer,
  userId,
  email,
  tagChoices,
}: {
  loginServer: string;
  userId: string;
  email: string;
  /** Tags the caller may put on a key (the policy's tagOwners they own; all for admins). */
  tagChoices: string[];
}) {
  const mut = useMutation();
  const [open, setOpen] = useState(false);
  const [created, setCreated] = useState<CreatedPreAuthKey | null>(null);

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = e.currentTarget;
    const data = new FormData(form);
    const tags = data.getAll("tags").map(String);
    const body: CreatePreAuthKeyRequest = {
      reusable: data.get("reusable") === "on",
      ephemeral: data.get("ephemeral") === "on",
      tags,
      expiresInSeconds: Number(data.get("expiresInSeconds")),
      ...(tags.length === 0 ? { userId } : {}),
    };
    const res = await mut.run("POST", "/api/v1/keys", CreatedPreAuthKey, body);
    if (res.ok) {
      setCreated(res.data);
      setOpen(false);
      form.reset();
    }
  }

  return (
    <>
      {created ? (
        <div className="secret-panel" data-testid="new-key">
          <h3>New pre-auth key</h3>
          <p className="alert alert-warn" role="status">
            Copy it now: it will not be shown again.
          </p>
          <div className="secret">
            <code data-testid="new-key-value">{created.key}</code>
            <CopyButton value={created.key} what="pre-auth key" className="btn btn-secondary btn-sm" />
          </div>
          <p className="small" style={{ margin: 0 }}>
            On the machine, run:
          </p>
          <div className="secret">
            <pre data-testid="new-key-command">{`trellis up --login-server ${loginServer} --auth-key ${created.key}`}</pre>
            <CopyButton
              value={`trellis up --login-server ${loginServer} --auth-key ${created.key}`}
              what="command"
              className="btn btn-secondary btn-sm"
            />
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
            data-testid="generate-key"
          >
            Generate key…
          </button>
        </div>
      ) : (
        <form className="panel form-grid" onSubmit={submit} noValidate aria-labelledby="gen-title">
          <h3 id="gen-title">Generate a pre-auth key</h3>
          <fieldset>
            <legend>Type</legend>
            <label className="check">
              <input type="checkbox" name="reusable" />
              <span>
                Reusable
                <span className="hint" style={{ display: "block" }}>
                  Registers any number of machines until it expires. Otherwise it works once.
                </span>
              </span>
            </label>
            <label className="check" style={{ marginTop: "0.5rem" }}>
              <input type="checkbox" name="ephemeral" />
              <span>
                Ephemeral
                <span className="hint" style={{ display: "block" }}>
                  Machines are removed automatically soon after they go offline (CI jobs, containers).
                </span>
              </span>
            </label>
          </fieldset>
          <fieldset aria-describedby="key-tags-hint">
            <legend>Tags</legend>
            {tagChoices.length === 0 ? (
              <span className="hint">
                The policy defines no tag you may set (tagOwners under Access controls).
              </span>
            ) : (
              <span className="chips">
                {tagChoices.map((t) => (
                  <label className="check" key={t}>
                    <input type="checkbox" name="tags" value={t} /> <span>{t}</span>
                  </label>
                ))}
              </span>
            )}
            <span id="key-tags-hint" className="hint" style={{ display: "block" }}>
              Optional. Without tags the machines belong to you ({email}); with tags, to the tags.
            </span>
            <FieldError issues={mut.issues} path="tags" />
          </fieldset>
          <label>
            Expires after
            <select name="expiresInSeconds" defaultValue={String(24 * 3600)}>
              {EXPIRIES.map((x) => (
                <option key={x.seconds} value={x.seconds}>
                  {x.label}
                </option>
              ))}
            </select>
            <FieldError issues={mut.issues} path="expiresInSeconds" />
          </label>
          <FormErrors failure={mut} fields={FIELDS} />
          <FormActions
            busy={mut.busy}
            submit="Generate key"
            busyLabel="Generating…"
            onCancel={() => setOpen(false)}
          />
        </form>
      )}
    </>
  );
}
