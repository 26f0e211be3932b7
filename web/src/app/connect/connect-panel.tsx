"use client";

import { useCallback, useEffect, useRef, useState } from "react";
import { BrowserNode, type NodePhase } from "@trellis/client/browser";
import type { FullMap, Peer } from "@trellis/proto";
import { Copyable } from "@/components/copy-button";
import { DataTable, type Column } from "@/components/data-table";
import { plural, relativeTime } from "@/components/format";

const END_REASONS: Record<string, string> = {
  deleted: "This machine was removed from the tailnet.",
  key_expired: "This machine's key expired. Connect again to renew it.",
  key_rotated: "This machine's key was replaced.",
  unauthorized: "This machine is no longer authorised.",
  left: "This tab left the tailnet; its key was deleted.",
};

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

export function ConnectPanel({ user }: { user: string }) {
  const [state, setState] = useState<NodePhase>({ phase: "idle" });
  const [known, setKnown] = useState(false);
  const node = useRef<BrowserNode | null>(null);

  const connect = useCallback(() => {
    node.current?.stop();
    const n = new BrowserNode({
      baseUrl: window.location.origin,
      storage: window.localStorage,
      hostname: browserHostname(),
      onChange: setState,
    });
    node.current = n;
    void n.start();
  }, []);

  useEffect(() => {
    // A browser that joined before reconnects as the same machine.
    const had = BrowserNode.hasIdentity(window.localStorage);
    setKnown(had);
    if (had) connect();
    // A page being unloaded (reload, navigation) must not start reconnecting as its stream drops.
    const stop = () => node.current?.stop();
    window.addEventListener("pagehide", stop);
    return () => {
      window.removeEventListener("pagehide", stop);
      stop();
    };
  }, [connect]);

  const disconnect = () => {
    node.current?.stop();
    setState({ phase: "idle" });
    setKnown(BrowserNode.hasIdentity(window.localStorage));
  };
  const leave = async () => {
    const n =
      node.current ??
      new BrowserNode({
        baseUrl: window.location.origin,
        storage: window.localStorage,
        hostname: browserHostname(),
        onChange: setState,
      });
    try {
      await n.leave();
    } catch (err) {
      setState({ phase: "failed", message: err instanceof Error ? err.message : String(err) });
    }
    setKnown(false);
  };

  return (
    <div data-testid="connect" data-phase={state.phase}>
      {state.phase === "idle" || state.phase === "ended" || state.phase === "failed" ? (
        <section className="panel">
          {state.phase === "ended" ? (
            <p data-testid="connect-ended">{END_REASONS[state.reason] ?? "The connection ended."}</p>
          ) : null}
          {state.phase === "failed" ? (
            <p className="error" role="alert" data-testid="connect-error">
              Could not connect: {state.message}
            </p>
          ) : null}
          <p>
            This tab joins as a machine owned by <strong>{user}</strong>. It appears on the Machines page and
            follows the tailnet&apos;s access controls like any other machine.
          </p>
          <div className="form-actions">
            <button type="button" className="btn btn-primary" onClick={connect} data-testid="connect-button">
              {known ? "Reconnect this tab" : "Connect this tab"}
            </button>
            {known ? (
              <button type="button" className="btn btn-secondary" onClick={() => void leave()}>
                Leave the tailnet
              </button>
            ) : null}
          </div>
        </section>
      ) : null}
      {state.phase === "connecting" ? (
        <section className="panel" aria-live="polite">
          <p data-testid="connect-progress">
            {state.attempt > 1 ? `Reconnecting (attempt ${state.attempt})…` : "Connecting…"}
          </p>
        </section>
      ) : null}
      {state.phase === "connected" ? (
        <Connected map={state.map} onDisconnect={disconnect} onLeave={() => void leave()} />
      ) : null}
    </div>
  );
}

function Connected({
  map,
  onDisconnect,
  onLeave,
}: {
  map: FullMap;
  onDisconnect: () => void;
  onLeave: () => void;
}) {
  const self = map.node;
  const ipv4 = self.addresses.find((a) => !a.includes(":"))?.replace(/\/\d+$/, "");
  const ipv6 = self.addresses.find((a) => a.includes(":"))?.replace(/\/\d+$/, "");
  const peers = [...map.peers].sort(
    (a, b) => Number(b.online) - Number(a.online) || a.name.localeCompare(b.name),
  );
  return (
    <>
      {!self.authorized ? (
        <section className="panel alert-warn" role="status" data-testid="connect-pending">
          <p>
            <strong>Waiting for approval.</strong> An admin must approve this machine before it can reach
            anything; this page updates when they do.
          </p>
        </section>
      ) : null}
      <section className="panel" aria-live="polite">
        <h2 className="section-title">
          <span className="dot dot-online">Connected</span> as{" "}
          <span className="mono" data-testid="connect-name">
            {self.dnsName || self.name}
          </span>
        </h2>
        <dl className="props">
          <dt>IPv4</dt>
          <dd data-testid="connect-ipv4">{ipv4 ? <Copyable value={ipv4} what="IPv4 address" /> : "—"}</dd>
          <dt>IPv6</dt>
          <dd>{ipv6 ? <Copyable value={ipv6} what="IPv6 address" /> : "—"}</dd>
          <dt>Node key</dt>
          <dd className="mono small">{self.key}</dd>
          <dt>Key expiry</dt>
          <dd>{self.keyExpiry ? relativeTime(self.keyExpiry) : "never"}</dd>
          <dt>Policy</dt>
          <dd>{map.policyVersion > 0 ? `version ${map.policyVersion}` : "default (allow all)"}</dd>
        </dl>
        <div className="form-actions">
          <button type="button" className="btn btn-secondary" onClick={onDisconnect}>
            Disconnect
          </button>
          <button type="button" className="btn btn-ghost" onClick={onLeave}>
            Leave the tailnet
          </button>
        </div>
        <p className="hint">
          This tab holds its place in the tailnet and receives the network map live. Traffic from the browser
          to machines (SSH, internal web pages) runs over the in-browser WireGuard data plane, which this page
          does not start yet.
        </p>
      </section>
      <section className="panel">
        <h2 className="section-title">
          Machines this tab may reach{" "}
          <span className="muted small" data-testid="connect-peer-count">
            {plural(peers.length, "machine")}
          </span>
        </h2>
        <DataTable
          rows={peers}
          rowKey={(p) => p.id}
          testId="connect-peers"
          empty={<p className="muted">No machine is reachable under the current access controls.</p>}
          columns={PEER_COLUMNS}
        />
      </section>
    </>
  );
}

const PEER_COLUMNS: Column<Peer>[] = [
  {
    header: "Machine",
    cell: (p) => (
      <>
        <div className="cell-title">{p.name}</div>
        <div className="cell-sub mono">{p.dnsName}</div>
      </>
    ),
  },
  {
    header: "Addresses",
    className: "mono small",
    cell: (p) => {
      const routes = p.allowedIPs.filter((a) => !p.addresses.includes(a));
      return (
        <>
          {p.addresses.map((a) => a.replace(/\/\d+$/, "")).join(", ")}
          {routes.length > 0 ? <div className="cell-sub">routes {routes.join(", ")}</div> : null}
        </>
      );
    },
  },
  { header: "OS", cell: (p) => p.os || "—" },
  {
    header: "Status",
    cell: (p) =>
      p.online ? (
        <span className="dot dot-online">Online</span>
      ) : (
        <span className="dot">{p.lastSeen ? `Last seen ${relativeTime(p.lastSeen)}` : "Offline"}</span>
      ),
  },
];
