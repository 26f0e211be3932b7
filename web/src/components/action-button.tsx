"use client";

import { useRouter } from "next/navigation";
import { useState } from "react";
import { ApiTokenInfo, MachineInfo, NoContent, PreAuthKeyInfo, SavedPolicy } from "@trellis/proto/admin";
import { api, type ResponseSchema } from "./api";
import { ConfirmDialog } from "./confirm-dialog";

/**
 * What each kind of action answers, by name: a server component cannot hand a
 * schema to a client one, only plain data.
 */
const ANSWERS = {
  machine: MachineInfo,
  apiToken: ApiTokenInfo,
  preAuthKey: PreAuthKeyInfo,
  savedPolicy: SavedPolicy,
  nothing: NoContent,
} satisfies Record<string, ResponseSchema<unknown>>;
export type ActionAnswer = keyof typeof ANSWERS;

/**
 * A button that calls one API endpoint (optionally after a confirm dialog),
 * then refreshes the page's server data. Props are plain data, so server
 * components can render it.
 */
export function ActionButton({
  label,
  method,
  url,
  answer,
  body,
  confirm,
  variant = "secondary",
  size = "sm",
  redirectTo,
  testId,
  ariaLabel,
}: {
  label: string;
  method: "POST" | "PUT" | "PATCH" | "DELETE";
  url: string;
  /** What the endpoint answers; the answer is checked even though only success matters here. */
  answer: ActionAnswer;
  body?: unknown;
  confirm?: { title: string; message: string; confirmLabel?: string };
  variant?: "primary" | "secondary" | "danger" | "ghost";
  size?: "sm" | "md";
  /** Navigate here after success instead of refreshing. */
  redirectTo?: string;
  testId?: string;
  ariaLabel?: string;
}) {
  const router = useRouter();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [open, setOpen] = useState(false);

  async function run() {
    setBusy(true);
    setError(null);
    const schema: ResponseSchema<unknown> = ANSWERS[answer];
    const res = await api(method, url, schema, body);
    setBusy(false);
    if (!res.ok) {
      setError(res.message);
      return;
    }
    setOpen(false);
    if (redirectTo) router.push(redirectTo);
    router.refresh();
  }

  return (
    <>
      <button
        type="button"
        className={`btn btn-${variant}${size === "sm" ? " btn-sm" : ""}`}
        disabled={busy}
        data-testid={testId}
        aria-label={ariaLabel}
        onClick={() => {
          setError(null);
          if (confirm) setOpen(true);
          else void run();
        }}
      >
        {busy && !confirm ? "Working…" : label}
      </button>
      {error && !open ? (
        <span className="inline-error" role="alert">
          {error}
        </span>
      ) : null}
      {confirm ? (
        <ConfirmDialog
          open={open}
          title={confirm.title}
          confirmLabel={confirm.confirmLabel ?? label}
          danger={variant === "danger"}
          busy={busy}
          error={error}
          onConfirm={() => void run()}
          onCancel={() => setOpen(false)}
        >
          <p>{confirm.message}</p>
        </ConfirmDialog>
      ) : null}
    </>
  );
}
