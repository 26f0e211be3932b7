"use client";

import Link from "next/link";
import { useEffect, useRef, useState } from "react";
import type { BrowserNodeClient } from "@trellis/client/browser";
import { BRIDGE, NEED_BRIDGE, type BridgeReply, type BridgeRequest } from "@/apps/origin/protocol";
import { Denied, useAppGate } from "@/apps/gate";
import { portAllowed } from "@/apps/use-tailnet";

export function WebApp({
  machine,
  port,
  appsUrl,
  path,
}: {
  machine: string;
  port: number;
  appsUrl: string;
  path: string;
}) {
  const gate = useAppGate(machine, port, "web");
  const key = `${machine}:${port}`;
  if (!gate.ready) return gate.view;
  if (!portAllowed(gate.result, port))
    return (
      <Denied
        testId="web"
        title={`The access controls do not allow port ${port} on ${machine} from this browser.`}
        result={gate.result}
      />
    );
  return (
    <Frame client={gate.client} machine={machine} port={port} appsUrl={appsUrl} path={path} appKey={key} />
  );
}

/**
 * The app in a frame of the apps origin; this page answers its service
 * worker's requests for connections — to this app's machine and port only.
 */
function Frame({
  client,
  machine,
  port,
  appsUrl,
  path,
  appKey,
}: {
  client: BrowserNodeClient;
  machine: string;
  port: number;
  appsUrl: string;
  path: string;
  appKey: string;
}) {
  const frame = useRef<HTMLIFrameElement>(null);
  const [shown, setShown] = useState(path);
  // The app's frame loads once the hidden bridge frame has given the service worker a bridge.
  const [bridged, setBridged] = useState<"waiting" | "ready" | string>("waiting");
  const [src] = useState(`${appsUrl}/${appKey}${path}`);
  const appsOrigin = new URL(appsUrl).origin;

  useEffect(() => {
    const ports: MessagePort[] = [];
    const onMessage = (e: MessageEvent) => {
      if (e.origin !== appsOrigin) return;
      const m = e.data as { t?: string; target?: string; path?: string; message?: string } | null;
      if (m?.t === "trellis-bridge-ready" && m.target === appKey) return setBridged("ready");
      if (m?.t === "trellis-bridge-failed") return setBridged(m.message ?? "the web-apps origin failed");
      if (
        m?.t === "trellis-location" &&
        typeof m.path === "string" &&
        e.source === frame.current?.contentWindow
      ) {
        // The address of this page follows the app, so it can be shared or reloaded.
        const inApp = m.path.startsWith(`/${appKey}`) ? m.path.slice(appKey.length + 1) || "/" : m.path;
        setShown(inApp);
        window.history.replaceState(null, "", `/web/${appKey}${inApp}`);
        return;
      }
      if (m?.t !== NEED_BRIDGE || m.target !== appKey || !e.source) return;
      const channel = new MessageChannel();
      channel.port1.onmessage = (r: MessageEvent<BridgeRequest>) => {
        if (typeof r.data?.id !== "number") return;
        const id = r.data.id;
        if (r.data.op === "ping") {
          const pong: BridgeReply = { id, ok: true, pong: true };
          return channel.port1.postMessage(pong);
        }
        if (r.data.op !== "connect") return;
        client.connectTcp(machine, port, 10_000).then(
          (c) => {
            const reply: BridgeReply = { id, ok: true, readable: c.readable, writable: c.writable };
            channel.port1.postMessage(reply, [c.readable, c.writable] as unknown as Transferable[]);
          },
          (err: unknown) => {
            const reply: BridgeReply = {
              id,
              ok: false,
              message: err instanceof Error ? err.message : String(err),
              code: (err as { code?: string }).code,
            };
            channel.port1.postMessage(reply);
          },
        );
      };
      ports.push(channel.port1);
      (e.source as Window).postMessage({ t: BRIDGE, target: appKey }, appsOrigin, [channel.port2]);
    };
    window.addEventListener("message", onMessage);
    return () => {
      window.removeEventListener("message", onMessage);
      for (const p of ports) p.close();
    };
  }, [client, machine, port, appKey, appsOrigin]);

  return (
    <section className="web-app" data-testid="web-app">
      <div className="web-bar">
        <span className="mono small break" data-testid="web-address">
          http://{appKey}
          {shown}
        </span>
        <span className="nowrap">
          <button
            type="button"
            className="btn btn-ghost btn-sm"
            onClick={() => {
              if (frame.current) frame.current.src = `${appsUrl}/${appKey}${shown}`;
            }}
          >
            Reload
          </button>
          <Link
            className="btn btn-ghost btn-sm"
            href={`/http/${encodeURIComponent(machine)}?port=${port}&path=${encodeURIComponent(shown)}`}
          >
            Request panel
          </Link>
        </span>
      </div>
      {/* Hidden: hands the apps origin's service worker connections of this browser's node. */}
      <iframe src={`${appsUrl}/__trellis/bridge.html#${encodeURIComponent(appKey)}`} hidden title="bridge" />
      {bridged !== "waiting" && bridged !== "ready" ? (
        <p className="error" role="alert" data-testid="web-error">
          Cannot open web apps: {bridged}
        </p>
      ) : null}
      <iframe
        ref={frame}
        src={bridged === "ready" ? src : "about:blank"}
        title={`${appKey} (tailnet web app)`}
        className="web-frame"
        data-testid="web-frame"
      />
    </section>
  );
}
