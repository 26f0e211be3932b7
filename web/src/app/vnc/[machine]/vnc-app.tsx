"use client";

import { useEffect, useRef, useState, type FormEvent } from "react";
import { vncChannel } from "@trellis/client/apps";
import type { BrowserNodeClient } from "@trellis/client/browser";
import { Denied, useAppGate } from "@/apps/gate";
import { connectionProblem, portAllowed } from "@/apps/use-tailnet";

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
  const gate = useAppGate(machine, port, "vnc");
  if (!gate.ready) return gate.view;
  if (!portAllowed(gate.result, port))
    return (
      <Denied
        testId="vnc"
        title={`The access controls do not allow VNC (port ${port}) from this browser to ${machine}.`}
        result={gate.result}
      />
    );
  return <Viewer client={gate.client} machine={machine} port={port} />;
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
