"use client";

import { useEffect, useState } from "react";

/** Copies `value` to the clipboard; says "Copied" for a moment. */
export function CopyButton({
  value,
  label = "Copy",
  what,
  className = "btn btn-ghost btn-sm",
}: {
  value: string;
  label?: string;
  /** For screen readers: what is copied ("IPv4 address"). */
  what?: string;
  className?: string;
}) {
  const [state, setState] = useState<"idle" | "copied" | "failed">("idle");

  useEffect(() => {
    if (state === "idle") return;
    const t = setTimeout(() => setState("idle"), 1500);
    return () => clearTimeout(t);
  }, [state]);

  async function copy() {
    try {
      await navigator.clipboard.writeText(value);
      setState("copied");
    } catch {
      // Clipboard API needs a secure context; fall back to a selection copy.
      const ta = document.createElement("textarea");
      ta.value = value;
      ta.setAttribute("readonly", "");
      ta.style.position = "fixed";
      ta.style.opacity = "0";
      document.body.appendChild(ta);
      ta.select();
      const ok = document.execCommand("copy");
      ta.remove();
      setState(ok ? "copied" : "failed");
    }
  }

  return (
    <button
      type="button"
      className={className}
      onClick={copy}
      aria-label={what ? `${label} ${what}` : undefined}
      title={what ? `${label} ${what}` : label}
    >
      <span aria-live="polite">
        {state === "copied" ? "Copied" : state === "failed" ? "Copy failed" : label}
      </span>
    </button>
  );
}

/** A value with a compact copy button beside it. */
export function Copyable({ value, what }: { value: string; what: string }) {
  return (
    <span className="copyable">
      <code>{value}</code>
      <CopyButton value={value} what={what} label="Copy" className="btn btn-ghost btn-xs" />
    </span>
  );
}
