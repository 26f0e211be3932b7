"use client";

// This browser's node, for every page of the console: one SharedWorker per
// browser profile runs it (node.worker.ts, client/src/browser/host.ts), and
// this provider keeps the page attached to it across client-side
// navigation, so the node and the data channels this page hosts outlive a
// move from Connect to Machines. The worker loads nothing heavy until the
// node joins.
import Link from "next/link";
import { createContext, useContext, useEffect, useState, type ReactNode } from "react";
import { BrowserNodeClient, type NodeState } from "@trellis/client/browser";
import type { PeerConnectionClass } from "@trellis/client";

interface BrowserNode {
  state: NodeState;
  client: BrowserNodeClient | null;
}

const Ctx = createContext<BrowserNode>({ state: { phase: "idle" }, client: null });

export function useBrowserNode(): BrowserNode {
  return useContext(Ctx);
}

/** What this browser calls itself when it joins (machine names come from it). */
function browserHostname(): string {
  const nav = navigator as Navigator & { userAgentData?: { platform?: string } };
  const platform = (nav.userAgentData?.platform || nav.platform || "").toLowerCase();
  const os = platform.includes("mac")
    ? "mac"
    : platform.includes("win")
      ? "windows"
      : platform.includes("linux")
        ? "linux"
        : "";
  return os ? `browser-${os}` : "browser";
}

export function BrowserNodeProvider({ userId, children }: { userId: string; children: ReactNode }) {
  const [node, setNode] = useState<BrowserNode>({ state: { phase: "idle" }, client: null });
  useEffect(() => {
    if (typeof SharedWorker !== "function") {
      setNode({ state: { phase: "failed", message: "this browser has no SharedWorker" }, client: null });
      return;
    }
    const worker = new SharedWorker(new URL("./node.worker.ts", import.meta.url), { type: "module" });
    const client = new BrowserNodeClient({
      port: worker.port,
      user: userId,
      hostname: browserHostname(),
      peerConnection:
        typeof RTCPeerConnection === "function"
          ? (RTCPeerConnection as unknown as PeerConnectionClass)
          : undefined,
      legacyStorage: window.localStorage,
    });
    const off = client.onState((state) => setNode({ state, client }));
    // A worker whose script does not load (a failed deploy, a network error) sends nothing: say so.
    worker.onerror = () =>
      setNode({
        state: { phase: "failed", message: "this browser's node could not start: its worker failed to load" },
        client,
      });
    // The scripting handle for the devtools console (and Trellis's browser tests and
    // benchmarks): `await trellisNode.ping("host")`, `trellisNode.connectTcp(host, port)`.
    // It can do only what this page can already do; the node key is not reachable through it.
    (window as unknown as { trellisNode?: BrowserNodeClient }).trellisNode = client;
    // This page's data channels close with it; the node carries on through other tabs or the relay.
    const leave = () => client.detach();
    window.addEventListener("pagehide", leave);
    return () => {
      off();
      window.removeEventListener("pagehide", leave);
      client.detach();
      delete (window as unknown as { trellisNode?: BrowserNodeClient }).trellisNode;
    };
  }, [userId]);
  return <Ctx.Provider value={node}>{children}</Ctx.Provider>;
}

const BADGE: Record<NodeState["phase"], string> = {
  idle: "not connected",
  connecting: "connecting…",
  connected: "connected",
  ended: "not connected",
  failed: "connection failed",
};

/** The sidebar's line about this browser's node, linking to Connect. */
export function BrowserNodeBadge() {
  const { state } = useBrowserNode();
  return (
    <Link href="/connect" className="node-badge small" data-testid="node-badge" data-phase={state.phase}>
      <span className={`dot${state.phase === "connected" ? " dot-online" : ""}`}>
        This browser: {BADGE[state.phase]}
      </span>
    </Link>
  );
}
