"use client";

// An app page's way into the tailnet: the browser's node (shared by every
// Trellis tab through its SharedWorker), joined on arrival when it is not
// yet (opening an app link joins first), and what the policy lets this
// machine open on the target.
import { useCallback, useEffect, useRef, useState } from "react";
import { isTakenOver, type BrowserNodeClient, type EndReason, type NodeState } from "@trellis/client/browser";
import { AccessResult } from "@trellis/proto/admin";
import { api } from "@/components/api";
import { useBrowserNode } from "@/node/provider";

export type TailnetReady =
  | { phase: "joining"; detail: string }
  | { phase: "failed"; message: string }
  /**
   * The node stopped after this page joined it (Disconnect, Leave, Sign out in another tab; removed
   * by an admin; taken over by a newer version of the app): what happened, and the way back.
   */
  | { phase: "stopped"; message: string; action: { label: string; run: () => void } }
  | { phase: "ready"; client: BrowserNodeClient; self: string };

const STOPPED: Record<"idle" | EndReason, string> = {
  idle: "This browser was disconnected from the tailnet (in another tab).",
  left: "This browser left the tailnet (in another tab).",
  deleted: "An admin removed this browser from the tailnet.",
  key_expired: "This browser's key expired.",
  key_rotated: "This browser's key was replaced.",
  unauthorized: "This browser is no longer allowed on the tailnet.",
  taken_over: "This browser's node now runs in a newer version of Trellis, open in another tab.",
};

/**
 * The node, joined: a page that opens with the node not running joins it
 * (opening an app link joins first). Once this page has seen it running, a
 * stop is the user's or an admin's decision, made elsewhere: the page says
 * so and offers to join again instead of undoing it. A node taken over by a
 * newer version of the app is never joined from here, even by a page that
 * opens after it happened: that would take it back into this tab's older
 * worker; the page offers a reload.
 */
export function useJoinedNode(): TailnetReady {
  const { state, client } = useBrowserNode();
  const [joinError, setJoinError] = useState<string | null>(null);
  const [joinAsked, setJoinAsked] = useState(false);
  const sawRunning = useRef(false);
  if (state.phase === "connecting" || state.phase === "connected") sawRunning.current = true;
  const stopped = state.phase === "idle" || state.phase === "ended";
  const takenOver = isTakenOver(state);
  const join = useCallback(() => {
    if (!client) return;
    sawRunning.current = false;
    setJoinError(null);
    setJoinAsked(true);
    client.join().catch((e: unknown) => setJoinError(e instanceof Error ? e.message : String(e)));
  }, [client]);
  useEffect(() => {
    // Only a node this page never saw running: the worker's first state may come before this runs.
    if (client && stopped && !takenOver && !joinAsked && !sawRunning.current) join();
  }, [client, stopped, takenOver, joinAsked, join]);
  if (joinError) return { phase: "failed", message: `Could not join the tailnet: ${joinError}` };
  if (state.phase === "failed")
    return { phase: "failed", message: `Could not join the tailnet: ${state.message}` };
  if (stopped && (sawRunning.current || takenOver)) {
    return {
      phase: "stopped",
      message: STOPPED[state.phase === "ended" ? state.reason : "idle"],
      action: takenOver
        ? { label: "Reload this page", run: () => window.location.reload() }
        : { label: "Join the tailnet again", run: join },
    };
  }
  if (state.phase === "connected" && client) {
    if (!state.map.node.authorized)
      return { phase: "joining", detail: "This browser is waiting for an admin to approve it." };
    return { phase: "ready", client, self: state.map.node.name };
  }
  return {
    phase: "joining",
    detail:
      state.phase === "connecting" && state.attempt > 1
        ? "Reconnecting to the tailnet…"
        : "Joining the tailnet…",
  };
}

export type Access =
  { phase: "checking" } | { phase: "error"; message: string } | { phase: "done"; result: AccessResult };

/**
 * What `self` may open on `machine` (and the verdict for `port`, when given),
 * asked again whenever the tailnet's policy changes (the node's map says so).
 */
export function useAccess(self: string | null, machine: string, port?: number): Access {
  const [access, setAccess] = useState<Access>({ phase: "checking" });
  const { state } = useBrowserNode();
  const policyVersion = state.phase === "connected" ? state.map.policyVersion : null;
  const checked = useRef(false);
  useEffect(() => {
    if (!self) return;
    const ctl = new AbortController();
    // A re-check after a policy change keeps showing the last answer until the new one arrives.
    if (!checked.current) setAccess({ phase: "checking" });
    checked.current = true;
    api(
      "POST",
      "/api/v1/me/access",
      AccessResult,
      { from: self, machine, ...(port ? { port } : {}) },
      { signal: ctl.signal },
    )
      .then((r) =>
        setAccess(r.ok ? { phase: "done", result: r.data } : { phase: "error", message: r.message }),
      )
      .catch(() => undefined);
    return () => ctl.abort();
  }, [self, machine, port, policyVersion]);
  return access;
}

export function portAllowed(result: AccessResult, port: number): boolean {
  return result.tcp.some((r) => port >= r.first && port <= r.last);
}

/** How this browser's node reaches `machine` now, in words (for errors): "over the relay (…)". */
export function pathTo(state: NodeState, machine: string): string | null {
  if (state.phase !== "connected") return null;
  const peer = state.map.peers.find((p) => p.name === machine || p.dnsName.replace(/\.$/, "") === machine);
  if (!peer) return `${machine} is not among the machines this browser may reach`;
  if (!peer.online) return `${machine} is offline`;
  const s = state.status.peers.find((p) => p.id === peer.id);
  if (!s || s.path === "none") return "no path to it yet";
  return `${s.path === "direct" ? "direct path" : "relay"}: ${s.pathDetail}`;
}

/** A connection failure in words: unreachable (and by which path), refused, timed out. */
export function connectionProblem(err: unknown, machine: string, port: number, state?: NodeState): string {
  const e = err as { message?: string; code?: string };
  const message = e?.message ?? String(err);
  const path = state ? pathTo(state, machine) : null;
  const via = path ? ` (${path})` : "";
  switch (e?.code) {
    case "refused":
      return `${machine} refused the connection on port ${port}: nothing listens there.`;
    case "timeout":
      return `${machine} did not answer on port ${port} in time${via}. Is it online, and does its own firewall allow the port?`;
    default:
      return `Could not connect to ${machine}:${port}${via}: ${message}`;
  }
}
