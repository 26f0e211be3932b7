"use client";

import { useEffect, useRef, useState, type FormEvent } from "react";
import { vncChannel } from "@trellis/client/apps";
import type { BrowserNodeClient } from "@trellis/client/browser";
import { connectionProblem, portAllowed, useAccess, useJoinedNode } from "@/apps/use-tailnet";

/** What noVNC's RFB is to this page (its module has no types). */
interface Rfb extends EventTarget {
  scaleViewport: boolean;
  resizeSession: boolean;
  sendCredentials(c: { password?: string; username?: string }): void;
  disconnect(): void;
}

type Phase =
  | { s: "connecting" }
  | { s: "password" }
  | { s: "connected"; name: string }
  | { s: "ended"; message: string; failed: boolean };

export function VncApp({ machine, port }: { machine: string; port: number }) {
  const node = useJoinedNode();
  const self = node.phase === "ready" ? node.self : null;
  const access = useAccess(self, machine, port);

  if (node.phase === "failed")
    return (
      <p className="error" role="alert" data-testid="vnc-error">
        {node.message}
      </p>
    );
  if (node.phase === "joining")
    return (
      <section className="panel" aria-live="polite">
        <p>{node.detail}</p>
      </section>
    );
  if (access.phase !== "done")
    return access.phase === "error" ? (
      <p className="error" role="alert" data-testid="vnc-error">
        {access.message}
      </p>
    ) : (
      <section className="panel" aria-live="polite">
        <p>Checking what the access controls allow…</p>
      </section>
    );
  if (!portAllowed(access.result, port))
    return (
      <section className="panel alert-warn" role="alert" data-testid="vnc-denied">
        <p>
          <strong>
            The access controls do not allow VNC (port {port}) from this browser to {machine}.
          </strong>
        </p>
        <p className="small">{access.result.port?.explanation}</p>
      </section>
    );
  return <Viewer client={node.client} machine={machine} port={port} />;
}

function Viewer({ client, machine, port }: { client: BrowserNodeClient; machine: string; port: number }) {
  const screen = useRef<HTMLDivElement>(null);
  const rfbRef = useRef<Rfb | null>(null);
  const [phase, setPhase] = useState<Phase>({ s: "connecting" });
  const [attempt, setAttempt] = useState(0);
  const [password, setPassword] = useState("");

  useEffect(() => {
    let rfb: Rfb | null = null;
    let cancelled = false;
    setPhase({ s: "connecting" });
    void (async () => {
      let conn;
      try {
        conn = await client.connectTcp(machine, port, 10_000);
      } catch (err) {
        if (!cancelled)
          setPhase({
            s: "ended",
            message: connectionProblem(err, machine, port, client.current),
            failed: true,
          });
        return;
      }
      // noVNC is loaded on demand: it is large and only this page needs it.
      const { default: RFB } = (await import("@novnc/novnc")) as unknown as {
        default: new (target: HTMLElement, channel: unknown, opts?: object) => Rfb;
      };
      if (cancelled || !screen.current) {
        await conn.writable.abort().catch(() => undefined);
        return;
      }
      rfb = new RFB(screen.current, vncChannel(conn), { shared: true });
      rfbRef.current = rfb;
      rfb.scaleViewport = true;
      rfb.addEventListener("connect", () => setPhase({ s: "connected", name: machine }));
      rfb.addEventListener("desktopname", (e) =>
        setPhase((p) => (p.s === "connected" ? { s: "connected", name: (e as CustomEvent).detail.name } : p)),
      );
      rfb.addEventListener("credentialsrequired", () => setPhase({ s: "password" }));
      rfb.addEventListener("securityfailure", (e) =>
        setPhase({
          s: "ended",
          message: `The VNC server refused the sign-in${(e as CustomEvent).detail?.reason ? `: ${(e as CustomEvent).detail.reason}` : "."}`,
          failed: true,
        }),
      );
      rfb.addEventListener("disconnect", (e) =>
        setPhase((p) =>
          p.s === "ended"
            ? p
            : {
                s: "ended",
                message: (e as CustomEvent).detail?.clean
                  ? "The VNC session ended."
                  : "The connection to the VNC server was lost.",
                failed: !(e as CustomEvent).detail?.clean,
              },
        ),
      );
    })();
    return () => {
      cancelled = true;
      rfb?.disconnect();
      rfbRef.current = null;
    };
  }, [client, machine, port, attempt]);

  const sendPassword = (e: FormEvent) => {
    e.preventDefault();
    rfbRef.current?.sendCredentials({ password });
    setPassword("");
    setPhase({ s: "connecting" });
  };

  return (
    <section className="panel terminal-panel" data-testid="vnc" data-phase={phase.s}>
      <div className="terminal-bar">
        <span className="small" role="status" data-testid="vnc-status">
          {phase.s === "connecting"
            ? "Connecting…"
            : phase.s === "password"
              ? "The VNC server asks for a password."
              : phase.s === "connected"
                ? `Connected: ${phase.name}`
                : phase.message}
        </span>
        {phase.s === "ended" ? (
          <button type="button" className="btn btn-secondary btn-sm" onClick={() => setAttempt((a) => a + 1)}>
            Reconnect
          </button>
        ) : null}
      </div>
      {phase.s === "password" ? (
        <form className="form-row" onSubmit={sendPassword}>
          <label>
            VNC password
            <input
              type="password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              autoComplete="off"
              data-testid="vnc-password"
            />
          </label>
          <button type="submit" className="btn btn-primary">
            Send
          </button>
        </form>
      ) : null}
      <div ref={screen} className="vnc-screen" data-testid="vnc-screen" />
    </section>
  );
}
