"use client";

// What every browser app shows before it can start: joining the tailnet,
// then asking what the access controls let this browser's machine open on
// the target; and, when they do not allow it, one way of saying so.
import type { ReactNode } from "react";
import type { BrowserNodeClient } from "@trellis/client/browser";
import type { AccessResult } from "@trellis/proto/admin";
import { useAccess, useJoinedNode } from "./use-tailnet";

export type AppGate =
  | { ready: false; view: ReactNode }
  | { ready: true; client: BrowserNodeClient; self: string; result: AccessResult };

/** The node joined and the access answer for `machine` (and `port`), or what to show meanwhile. */
export function useAppGate(machine: string, port: number | undefined, testId: string): AppGate {
  const node = useJoinedNode();
  const self = node.phase === "ready" ? node.self : null;
  const access = useAccess(self, machine, port);
  const failure = node.phase === "failed" ? node.message : access.phase === "error" ? access.message : null;
  if (failure)
    return {
      ready: false,
      view: (
        <p className="error" role="alert" data-testid={`${testId}-error`}>
          {failure}
        </p>
      ),
    };
  if (node.phase === "stopped")
    return {
      ready: false,
      view: (
        <section className="panel alert-warn" role="alert" data-testid={`${testId}-stopped`}>
          <p>{node.message}</p>
          <button type="button" className="btn btn-primary" onClick={node.action.run}>
            {node.action.label}
          </button>
        </section>
      ),
    };
  if (node.phase !== "ready" || access.phase !== "done")
    return {
      ready: false,
      view: (
        <section className="panel" aria-live="polite" data-testid={`${testId}-waiting`}>
          <p>{node.phase === "joining" ? node.detail : "Checking what the access controls allow…"}</p>
        </section>
      ),
    };
  return { ready: true, client: node.client, self: node.self, result: access.result };
}

/** The access controls do not allow it: what, why (the checker's sentence), and anything more. */
export function Denied({
  testId,
  title,
  result,
  children,
}: {
  testId: string;
  title: ReactNode;
  result: AccessResult;
  children?: ReactNode;
}) {
  return (
    <section className="panel alert-warn" role="alert" data-testid={`${testId}-denied`}>
      <p>
        <strong>{title}</strong>
      </p>
      {result.port ? <p className="small">{result.port.explanation}</p> : null}
      {children}
    </section>
  );
}
