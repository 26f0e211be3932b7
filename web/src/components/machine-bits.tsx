import Link from "next/link";
import type { MachineInfo } from "@trellis/proto";
import { formatDate, isExitRoute, relativeTime } from "./format";

export type MachineState = "pending" | "expired" | "online" | "offline";

export function machineState(m: MachineInfo): MachineState {
  if (!m.authorized) return "pending";
  if (m.expired) return "expired";
  return m.online ? "online" : "offline";
}

export function MachineStatus({ m }: { m: MachineInfo }) {
  const state = machineState(m);
  if (state === "pending") return <span className="dot dot-pending">Needs approval</span>;
  if (state === "expired") return <span className="dot dot-expired">Key expired</span>;
  if (state === "online") return <span className="dot dot-online">Online</span>;
  if (m.wireguard && !m.lastSeen) {
    // Online and last seen come from its gateway, which reports its handshakes: none yet.
    return (
      <span className="dot" title="A plain WireGuard peer: no handshake with its gateway yet">
        WireGuard peer
      </span>
    );
  }
  return (
    <span className="dot" title={m.lastSeen ? formatDate(m.lastSeen) : undefined}>
      {m.lastSeen ? `Last seen ${relativeTime(m.lastSeen)}` : "Offline"}
    </span>
  );
}

export function KeyExpiry({ m }: { m: MachineInfo }) {
  if (m.expired) return <span className="badge badge-bad">expired</span>;
  if (!m.keyExpiry) return <span className="muted">never</span>;
  const soon = Date.parse(m.keyExpiry) - Date.now() < 14 * 24 * 3600 * 1000;
  return (
    <time
      dateTime={m.keyExpiry}
      title={formatDate(m.keyExpiry)}
      className={soon ? "badge badge-warn" : undefined}
    >
      {relativeTime(m.keyExpiry)}
    </time>
  );
}

export function Owner({ m }: { m: MachineInfo }) {
  if (m.tags.length > 0) {
    return (
      <span className="chips">
        {m.tags.map((t) => (
          <span className="chip" key={t}>
            {t}
          </span>
        ))}
      </span>
    );
  }
  if (m.user) return <span title={m.user.name}>{m.user.email}</span>;
  return <span className="muted">—</span>;
}

/** Advertised routes that wait for approval (exit routes included). */
export function unapprovedRoutes(m: MachineInfo): string[] {
  return m.advertisedRoutes.filter((r) => !m.approvedRoutes.includes(r));
}

export function RoutesSummary({ m }: { m: MachineInfo }) {
  const subnets = m.advertisedRoutes.filter((r) => !isExitRoute(r));
  const pending = unapprovedRoutes(m);
  if (subnets.length === 0 && !m.exitNodeAdvertised) return <span className="muted">—</span>;
  return (
    <span className="chips">
      {subnets.length > 0 ? (
        <span className="chip" title={subnets.join("\n")}>
          {subnets[0]}
          {subnets.length > 1 ? ` +${subnets.length - 1}` : ""}
        </span>
      ) : null}
      {m.exitNodeAdvertised ? (
        <span className={`badge ${m.exitNodeApproved ? "badge-info" : ""}`}>Exit node</span>
      ) : null}
      {pending.length > 0 ? (
        <span className="badge badge-warn" data-testid="routes-need-approval">
          needs approval
        </span>
      ) : null}
    </span>
  );
}

/**
 * How peers reach a machine, as far as the control plane knows: directly at
 * the endpoints it reported, and through its home relay region otherwise.
 */
export function PathSummary({ m }: { m: MachineInfo }) {
  if (!m.online) return <span className="muted">—</span>;
  if (m.wireguard) {
    // A plain WireGuard peer reports nothing itself: it is reached through its gateway.
    return (
      <span className="chips" data-testid="machine-path">
        {m.wireguard.gatewayId ? (
          <Link
            className="chip"
            href={`/machines/${m.wireguard.gatewayId}`}
            title="A plain WireGuard peer: peers reach it through its gateway"
          >
            through its gateway
          </Link>
        ) : (
          <span className="chip">through its gateway</span>
        )}
      </span>
    );
  }
  const direct = m.endpoints.length > 0;
  const relay = m.homeRegion !== null;
  if (!direct && !relay)
    return (
      <span
        className="muted"
        data-testid="machine-path"
        title="The machine is online but has not reported a home relay or any address peers could reach it at yet (it reports them a few seconds after it connects)."
      >
        not reported yet
      </span>
    );
  return (
    <span className="chips" data-testid="machine-path">
      {direct ? (
        <span className="chip" title={`Addresses peers may reach it at directly:\n${m.endpoints.join("\n")}`}>
          direct ({m.endpoints.length})
        </span>
      ) : null}
      {relay ? (
        <span className="chip" title="Peers that cannot reach it directly go through this relay region">
          relay {m.homeRegion}
        </span>
      ) : null}
    </span>
  );
}
