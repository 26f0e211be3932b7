"use client";

import Link from "next/link";
import { useState } from "react";
import { portAllowed, useAccess } from "@/apps/use-tailnet";
import { useBrowserNode } from "@/node/provider";

/**
 * Web, SSH and VNC for a machine, offered when the access controls allow
 * them from this browser's machine (nothing while the browser is not
 * connected: what it may reach depends on its own machine).
 */
export function AppLinks({
  machine,
  testIdPrefix = "apps",
  ping = false,
}: {
  machine: string;
  testIdPrefix?: string;
  /** Offer a Ping button too (Connect has its own). */
  ping?: boolean;
}) {
  const { state, client } = useBrowserNode();
  const [pinged, setPinged] = useState<string | null>(null);
  const self = state.phase === "connected" ? state.map.node.name : null;
  const access = useAccess(self, machine);
  if (access.phase !== "done") return null;
  const ssh = portAllowed(access.result, 22);
  const vnc = access.result.tcp.some((r) => r.first <= 5999 && r.last >= 5900);
  // The web port offered first: a usual one if allowed, else the first allowed that is not SSH or VNC.
  const web =
    [80, 8080, 8000, 3000, 443].find((p) => portAllowed(access.result, p)) ??
    access.result.tcp
      .map((r) => (r.first === 22 ? (r.last > 22 ? 23 : null) : r.first))
      .find((p) => p !== null && (p < 5900 || p > 5999));
  const at = encodeURIComponent(machine);
  return (
    <span
      className="nowrap"
      data-testid={`${testIdPrefix}-apps`}
      data-machine={machine}
      data-ssh={ssh ? "yes" : "no"}
      data-vnc={vnc ? "yes" : "no"}
      data-web={web ?? "no"}
    >
      {web ? (
        <Link
          className="btn btn-secondary btn-sm"
          href={`/web/${at}:${web}/`}
          target="_blank"
          data-testid={`${testIdPrefix}-web`}
        >
          Web
        </Link>
      ) : null}{" "}
      {ssh ? (
        <Link
          className="btn btn-secondary btn-sm"
          href={`/ssh/${at}`}
          target="_blank"
          data-testid={`${testIdPrefix}-ssh`}
        >
          SSH
        </Link>
      ) : null}{" "}
      {vnc ? (
        <Link
          className="btn btn-secondary btn-sm"
          href={`/vnc/${at}`}
          target="_blank"
          data-testid={`${testIdPrefix}-vnc`}
        >
          VNC
        </Link>
      ) : null}
      {ping && client ? (
        <>
          {" "}
          <button
            type="button"
            className="btn btn-ghost btn-sm"
            onClick={() => {
              setPinged("…");
              client.ping(machine, 5000).then(
                (r) => setPinged(`${r.rttMs} ms via ${r.path === "direct" ? "direct path" : "relay"}`),
                (e: unknown) => setPinged(e instanceof Error ? e.message : String(e)),
              );
            }}
            data-testid={`${testIdPrefix}-ping`}
          >
            Ping
          </button>
          {pinged ? (
            <span className="small" aria-live="polite" data-testid={`${testIdPrefix}-ping-result`}>
              {" "}
              {pinged}
            </span>
          ) : null}
        </>
      ) : null}
    </span>
  );
}
