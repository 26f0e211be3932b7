"use client";

import { useMemo, useState } from "react";
import { isTakenOver, type BrowserNodeClient, type EndReason } from "@trellis/client/browser";
import type { EngineStatus, PeerStatus, PingResult } from "@trellis/client";
import type { FullMap, Peer } from "@trellis/proto";
import { Copyable } from "@/components/copy-button";
import { DataTable, type Column } from "@/components/data-table";
import { formatBytes, plural, relativeTime } from "@/components/format";
import { AppLinks } from "@/apps/app-links";
import { RouteHost } from "@/apps/route-host";
import { useBrowserNode } from "@/node/provider";

/** The map stream's state, as the user needs it: while it is down, paths already made keep working. */
const CONTROL_LABEL: Record<string, string> = {
  connecting: "connecting…",
  connected: "connected",
  resyncing: "catching up…",
  retrying: "unreachable, retrying — open connections and direct paths keep working",
  ended: "disconnected",
  stopped: "disconnected",
  failed: "gave up (reload to try again)",
};

const END_REASONS: Record<EndReason, string> = {
  deleted: "This machine was removed from the tailnet.",
  key_expired: "This machine's key expired. Connect again to renew it.",
  key_rotated: "This machine's key was replaced.",
  unauthorized: "This machine is no longer authorised.",
  left: "This browser left the tailnet; its key was deleted.",
  taken_over:
    "This browser's node now runs in a newer version of Trellis, open in another tab. Reload this page to use it here.",
};

export function ConnectPanel({ email }: { email: string }) {
  const { state, client } = useBrowserNode();
  const [error, setError] = useState<string | null>(null);
  const run = (op: (c: BrowserNodeClient) => Promise<unknown>) => {
    const c = client;
    if (!c) return;
    setError(null);
    op(c).catch((err: unknown) => setError(err instanceof Error ? err.message : String(err)));
  };

  return (
    <div data-testid="connect" data-phase={state.phase}>
      {error ? (
        <p className="error" role="alert" data-testid="connect-error">
          {error}
        </p>
      ) : null}
      {state.phase === "idle" || state.phase === "ended" || state.phase === "failed" ? (
        <section className="panel">
          {state.phase === "ended" ? <p data-testid="connect-ended">{END_REASONS[state.reason]}</p> : null}
          {state.phase === "failed" && !error ? (
            <p className="error" role="alert" data-testid="connect-error">
              Could not connect: {state.message}
            </p>
          ) : null}
          <p>
            This browser joins as a machine owned by <strong>{email}</strong>, with its own WireGuard key that
            never leaves it. Every Trellis tab of this browser is the same machine. It appears on the Machines
            page and follows the tailnet&apos;s access controls like any other machine.
          </p>
          <div className="form-actions">
            {isTakenOver(state) ? (
              // Connect here would take the node back into this older version's worker.
              <button
                type="button"
                className="btn btn-primary"
                onClick={() => window.location.reload()}
                data-testid="connect-reload"
              >
                Reload this page
              </button>
            ) : (
              <button
                type="button"
                className="btn btn-primary"
                onClick={() => run((c) => c.join())}
                // Until this page is attached to the browser's node a click would do nothing: say so.
                disabled={!client}
                title={client ? undefined : "Starting this browser's node…"}
                data-testid="connect-button"
              >
                Connect this browser
              </button>
            )}
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
        <Connected
          map={state.map}
          status={state.status}
          client={client}
          onDisconnect={() => run((c) => c.stop())}
          onLeave={() => run((c) => c.leave())}
        />
      ) : null}
    </div>
  );
}

interface Row {
  peer: Peer;
  status: PeerStatus | undefined;
}

/** Drop reasons people act on, in words; the rest keep the engine's name. */
const DROP_LABEL: Record<string, string> = {
  filter_no_rule: "not allowed by the access controls",
  not_local: "not addressed to this machine",
  stack_queue_full: "receive queue full",
  decrypt_failed: "failed to decrypt",
  replay: "replayed",
  unknown_key: "from an unknown key",
  malformed_batch: "malformed messages on a direct path",
};

const PATH_LABEL: Record<string, string> = { direct: "Direct", relay: "Relayed", none: "No path" };

function Connected({
  map,
  status,
  client,
  onDisconnect,
  onLeave,
}: {
  map: FullMap;
  status: EngineStatus;
  client: BrowserNodeClient | null;
  onDisconnect: () => void;
  onLeave: () => void;
}) {
  const self = map.node;
  const ipv4 = self.addresses.find((a) => !a.includes(":"))?.replace(/\/\d+$/, "");
  const ipv6 = self.addresses.find((a) => a.includes(":"))?.replace(/\/\d+$/, "");
  const rows = useMemo<Row[]>(() => {
    const byId = new Map(status.peers.map((p) => [p.id, p]));
    return [...map.peers]
      .sort((a, b) => Number(b.online) - Number(a.online) || a.name.localeCompare(b.name))
      .map((peer) => ({ peer, status: byId.get(peer.id) }));
  }, [map.peers, status.peers]);
  const [selected, setSelected] = useState<string | null>(null);
  const [pings, setPings] = useState<Record<string, PingResult | { error: string } | "pending">>({});
  const ping = (name: string) => {
    setPings((p) => ({ ...p, [name]: "pending" }));
    client
      ?.ping(name, 5000)
      .then((r) => setPings((p) => ({ ...p, [name]: r })))
      .catch((err: unknown) =>
        setPings((p) => ({ ...p, [name]: { error: err instanceof Error ? err.message : String(err) } })),
      );
  };
  const drops = Object.entries(status.drops);
  const chosen = rows.find((r) => r.peer.id === selected);

  const columns: Column<Row>[] = [
    {
      header: "Machine",
      cell: ({ peer }) => (
        <button
          type="button"
          className="link-button"
          aria-expanded={selected === peer.id}
          onClick={() => setSelected(selected === peer.id ? null : peer.id)}
          data-testid="connect-peer"
        >
          <span className="cell-title">{peer.name}</span>
          <span className="cell-sub mono">{peer.dnsName}</span>
        </button>
      ),
    },
    {
      header: "Addresses",
      className: "mono small",
      cell: ({ peer }) => {
        const routes = peer.allowedIPs.filter((a) => !peer.addresses.includes(a));
        return (
          <>
            {peer.addresses.map((a) => a.replace(/\/\d+$/, "")).join(", ")}
            {routes.length > 0 ? <div className="cell-sub">routes {routes.join(", ")}</div> : null}
          </>
        );
      },
    },
    {
      header: "Status",
      cell: ({ peer }) =>
        peer.online ? (
          <span className="dot dot-online">Online</span>
        ) : (
          <span className="dot">
            {peer.lastSeen ? `Last seen ${relativeTime(peer.lastSeen)}` : "Offline"}
          </span>
        ),
    },
    {
      header: "Path",
      cell: ({ peer, status: s }) => (
        <span
          title={s?.pathDetail}
          data-testid="connect-path"
          data-path={s?.path ?? "none"}
          data-peer={peer.name}
        >
          {PATH_LABEL[s?.path ?? "none"]}
          {s?.rttMs !== null && s?.rttMs !== undefined ? (
            <span className="cell-sub">{s.rttMs} ms</span>
          ) : null}
        </span>
      ),
    },
    {
      header: "In / out",
      num: true,
      className: "nowrap small",
      cell: ({ status: s }) => (s ? `${formatBytes(s.rxBytes)} / ${formatBytes(s.txBytes)}` : "—"),
    },
    {
      header: "Open",
      hideHeader: true,
      // Browsers serve no SSH, VNC or web app: apps are offered for the other machines, as on Machines.
      cell: ({ peer }) =>
        peer.online && peer.os !== "browser" ? (
          <>
            <AppLinks machine={peer.name} testIdPrefix="connect" />
            <RouteHost
              machine={peer.name}
              routes={peer.allowedIPs.filter((a) => !peer.addresses.includes(a))}
            />
          </>
        ) : null,
    },
    {
      header: "Ping",
      hideHeader: true,
      cell: ({ peer }) => {
        const r = pings[peer.name];
        return (
          // The answer goes under the button: beside it, it widened the table past the page.
          <>
            <button
              type="button"
              className="btn btn-secondary btn-sm"
              onClick={() => ping(peer.name)}
              disabled={r === "pending"}
              data-testid="connect-ping"
            >
              Ping
            </button>
            <span className="cell-sub" data-testid="connect-ping-result" aria-live="polite">
              {r === undefined
                ? null
                : r === "pending"
                  ? "…"
                  : "error" in r
                    ? r.error
                    : `${r.rttMs} ms via ${r.path === "direct" ? "direct path" : "relay"}`}
            </span>
          </>
        );
      },
    },
  ];

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
          <dd className="mono small break">{self.key}</dd>
          <dt>Control server</dt>
          <dd data-testid="connect-control" data-state={status.control}>
            {CONTROL_LABEL[status.control] ?? status.control}
          </dd>
          <dt>Relay</dt>
          <dd data-testid="connect-relay">
            {status.relay.region === null
              ? "none"
              : `region ${status.relay.region}, ${status.relay.connected ? "connected" : "reconnecting"}${
                  status.relay.latencyMs !== null ? `, ${Math.round(status.relay.latencyMs)} ms` : ""
                }`}
          </dd>
          <dt>Key expiry</dt>
          <dd>{self.keyExpiry ? relativeTime(self.keyExpiry) : "never"}</dd>
          <dt>Policy</dt>
          <dd>{map.policyVersion > 0 ? `version ${map.policyVersion}` : "default (allow all)"}</dd>
          <dt>Dropped packets</dt>
          <dd data-testid="connect-drops">
            {drops.length === 0
              ? "none"
              : drops
                  .map(([reason, n]) => `${DROP_LABEL[reason] ?? reason.replace(/_/g, " ")}: ${n}`)
                  .join(", ")}
          </dd>
        </dl>
        <div className="form-actions">
          <button type="button" className="btn btn-secondary" onClick={onDisconnect}>
            Disconnect
          </button>
          <button type="button" className="btn btn-ghost" onClick={onLeave} data-testid="connect-leave">
            Leave the tailnet
          </button>
        </div>
      </section>
      <section className="panel">
        <h2 className="section-title">
          Machines this browser may reach{" "}
          <span className="muted small" data-testid="connect-peer-count">
            {plural(rows.length, "machine")}
          </span>
        </h2>
        <DataTable
          rows={rows}
          rowKey={(r) => r.peer.id}
          testId="connect-peers"
          empty={<p className="muted">No machine is reachable under the current access controls.</p>}
          columns={columns}
        />
        {chosen ? <PeerDetail row={chosen} /> : null}
      </section>
    </>
  );
}

function PeerDetail({ row: { peer, status: s } }: { row: Row }) {
  return (
    <div className="panel-inset" data-testid="connect-peer-detail">
      <h3 className="section-title">{peer.name}</h3>
      <dl className="props">
        <dt>Path</dt>
        <dd data-testid="connect-peer-path">{s ? `${PATH_LABEL[s.path]}: ${s.pathDetail}` : "—"}</dd>
        <dt>Round trip</dt>
        <dd>
          {s?.rttMs !== null && s?.rttMs !== undefined ? `${s.rttMs} ms` : "not measured yet (ping it)"}
        </dd>
        <dt>Received</dt>
        <dd>{s ? formatBytes(s.rxBytes) : "—"}</dd>
        <dt>Sent</dt>
        <dd>{s ? formatBytes(s.txBytes) : "—"}</dd>
        <dt>Last handshake</dt>
        <dd>{s?.lastHandshake ? relativeTime(new Date(s.lastHandshake).toISOString()) : "none yet"}</dd>
        <dt>Operating system</dt>
        <dd>{peer.os || "—"}</dd>
        <dt>Node key</dt>
        <dd className="mono small break">{peer.key}</dd>
      </dl>
    </div>
  );
}
