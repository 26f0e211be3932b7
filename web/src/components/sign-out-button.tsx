"use client";

import { signOut } from "next-auth/react";
import { useState } from "react";
import { useBrowserNode } from "@/node/provider";

export function SignOutButton() {
  const [busy, setBusy] = useState(false);
  const { client } = useBrowserNode();
  return (
    <button
      type="button"
      className="btn btn-secondary btn-sm"
      disabled={busy}
      onClick={() => {
        setBusy(true);
        // Signing out disconnects this browser's node too (it stays registered; Connect rejoins it).
        void (client?.stop() ?? Promise.resolve())
          .catch((err: unknown) => console.error("disconnecting this browser's node failed", err))
          .finally(() => void signOut({ callbackUrl: "/login" }));
      }}
    >
      {busy ? "Signing out…" : "Sign out"}
    </button>
  );
}
