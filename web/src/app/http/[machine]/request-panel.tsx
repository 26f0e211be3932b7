"use client";

import { useMemo, useState, type FormEvent } from "react";
import { HttpClient, HttpError, type HttpResponse } from "@trellis/client/apps";
import type { BrowserNodeClient } from "@trellis/client/browser";
import { formatBytes } from "@/components/format";
import { useAppGate } from "@/apps/gate";
import { connectionProblem, portAllowed } from "@/apps/use-tailnet";

/** Shown of a response body; the rest is counted, not kept. */
const SHOW_BYTES = 256 * 1024;
const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

interface Result {
  status: number;
  statusText: string;
  headers: [string, string][];
  body: string;
  bytes: number;
  truncated: boolean;
  headMs: number;
  totalMs: number;
}

export function RequestPanel({
  machine,
  initialPort,
  initialPath,
}: {
  machine: string;
  initialPort: number;
  initialPath: string;
}) {
  const gate = useAppGate(machine, undefined, "http");
  if (!gate.ready) return gate.view;
  return (
    <Panel
      client={gate.client}
      machine={machine}
      initialPort={initialPort}
      initialPath={initialPath}
      ports={gate.result.tcp}
    />
  );
}

function Panel({
  client,
  machine,
  initialPort,
  initialPath,
  ports,
}: {
  client: BrowserNodeClient;
  machine: string;
  initialPort: number;
  initialPath: string;
  ports: { first: number; last: number }[];
}) {
  const [method, setMethod] = useState("GET");
  const [port, setPort] = useState(String(initialPort));
  const [path, setPath] = useState(initialPath);
  const [headers, setHeaders] = useState("");
  const [body, setBody] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [result, setResult] = useState<Result | null>(null);
  const portNum = Number(port);
  const allowed =
    Number.isInteger(portNum) && portAllowed({ machine: { id: "", name: "" }, tcp: ports }, portNum);
  // One client per port: kept connections are reused between requests.
  const http = useMemo(
    () => (allowed ? new HttpClient(() => client.connectTcp(machine, portNum, 10_000)) : null),
    [client, machine, portNum, allowed],
  );
  const listed = ports
    .filter((r) => r.last - r.first < 20)
    .flatMap((r) => Array.from({ length: r.last - r.first + 1 }, (_, i) => r.first + i));

  const send = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    if (!http) return;
    const hdrs: [string, string][] = [];
    for (const line of headers
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean)) {
      const i = line.indexOf(":");
      if (i <= 0) return setError(`Write each header as "Name: value" (not: ${line}).`);
      hdrs.push([line.slice(0, i).trim(), line.slice(i + 1).trim()]);
    }
    setBusy(true);
    const t0 = performance.now();
    try {
      let res: HttpResponse;
      try {
        res = await http.request({
          method,
          target: path || "/",
          host: `${machine}:${portNum}`,
          headers: hdrs,
          body: body && !["GET", "HEAD"].includes(method) ? new TextEncoder().encode(body) : null,
        });
      } catch (err) {
        if (err instanceof HttpError && err.code === "malformed" && /status line/.test(err.message))
          throw new Error(
            `${machine}:${portNum} did not answer in HTTP. If it speaks TLS (HTTPS), that is not supported here: the tunnel already encrypts, use the service's plain-HTTP port.`,
          );
        if (err instanceof HttpError) throw err;
        throw new Error(connectionProblem(err, machine, portNum, client.current));
      }
      const headMs = performance.now() - t0;
      let bytes = 0;
      const parts: Uint8Array[] = [];
      if (res.body) {
        const reader = res.body.getReader();
        for (;;) {
          const r = await reader.read();
          if (r.done) break;
          if (bytes < SHOW_BYTES) parts.push(r.value.subarray(0, SHOW_BYTES - bytes));
          bytes += r.value.length;
        }
      }
      const shown = new TextDecoder().decode(await new Blob(parts as BlobPart[]).arrayBuffer());
      setResult({
        status: res.status,
        statusText: res.statusText,
        headers: res.headers,
        body: shown,
        bytes,
        truncated: bytes > SHOW_BYTES,
        headMs,
        totalMs: performance.now() - t0,
      });
    } catch (err) {
      setResult(null);
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <section className="panel" data-testid="http-panel">
        <form className="form-grid wide" onSubmit={(e) => void send(e)}>
          <div className="form-row">
            <label style={{ flex: "0 0 8rem" }}>
              Method
              <select value={method} onChange={(e) => setMethod(e.target.value)} data-testid="http-method">
                {METHODS.map((m) => (
                  <option key={m}>{m}</option>
                ))}
              </select>
            </label>
            <label style={{ flex: "0 0 8rem" }}>
              Port
              <input
                list="http-ports"
                inputMode="numeric"
                value={port}
                onChange={(e) => setPort(e.target.value)}
                data-testid="http-port"
              />
              <datalist id="http-ports">
                {listed.map((p) => (
                  <option key={p} value={p} />
                ))}
              </datalist>
            </label>
            <label>
              Path
              <input
                value={path}
                onChange={(e) => setPath(e.target.value)}
                className="mono"
                data-testid="http-path"
              />
            </label>
          </div>
          {!allowed ? (
            <p className="field-error" role="alert" data-testid="http-denied">
              The access controls do not allow port {port} on {machine} from this browser. Allowed TCP ports:{" "}
              {ports.length
                ? ports.map((r) => (r.first === r.last ? r.first : `${r.first}-${r.last}`)).join(", ")
                : "none"}
              .
            </p>
          ) : null}
          <label>
            Headers (one per line, Name: value)
            <textarea
              rows={2}
              className="mono small"
              value={headers}
              onChange={(e) => setHeaders(e.target.value)}
            />
          </label>
          {!["GET", "HEAD"].includes(method) ? (
            <label>
              Body
              <textarea
                rows={4}
                className="mono small"
                value={body}
                onChange={(e) => setBody(e.target.value)}
                data-testid="http-body"
              />
            </label>
          ) : null}
          <div className="form-actions">
            <button
              type="submit"
              className="btn btn-primary"
              disabled={busy || !allowed}
              data-testid="http-send"
            >
              {busy ? "Sending…" : "Send"}
            </button>
          </div>
        </form>
        {error ? (
          <p className="error" role="alert" data-testid="http-error">
            {error}
          </p>
        ) : null}
      </section>
      {result ? (
        <section className="panel" data-testid="http-result">
          <h2 className="section-title">
            <span data-testid="http-status">
              {result.status} {result.statusText}
            </span>{" "}
            <span className="muted small">
              head {Math.round(result.headMs)} ms · total {Math.round(result.totalMs)} ms ·{" "}
              {formatBytes(result.bytes)}
            </span>
          </h2>
          <dl className="props small mono">
            {result.headers.map(([n, v], i) => (
              <div key={i} style={{ display: "contents" }}>
                <dt>{n}</dt>
                <dd className="break">{v}</dd>
              </div>
            ))}
          </dl>
          <pre className="code-block small" data-testid="http-response-body">
            {result.body}
            {result.truncated ? `\n… (${formatBytes(result.bytes - SHOW_BYTES)} more not shown)` : ""}
          </pre>
        </section>
      ) : null}
    </>
  );
}
