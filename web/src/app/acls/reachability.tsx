"use client";

import { useState, type FormEvent } from "react";
import { ReachabilityResult } from "@trellis/proto/admin";
import { api, issuesByPath } from "@/components/api";

/** "Can A reach B on port P?" under the policy in force (not the unsaved edit). */
export function ReachabilityChecker() {
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<ReachabilityResult | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [fields, setFields] = useState<Record<string, string>>({});

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const data = new FormData(e.currentTarget);
    const proto = String(data.get("proto") ?? "tcp") as "tcp" | "udp" | "icmp";
    const portText = String(data.get("port") ?? "").trim();
    setBusy(true);
    setError(null);
    setFields({});
    const res = await api("POST", "/api/v1/policy/reachability", ReachabilityResult, {
      src: String(data.get("src") ?? "").trim(),
      dst: String(data.get("dst") ?? "").trim(),
      port: proto === "icmp" ? 0 : portText === "" ? -1 : Number(portText),
      proto,
    });
    setBusy(false);
    if (res.ok) {
      setResult(res.data);
    } else {
      setResult(null);
      setError(res.message);
      setFields(issuesByPath(res.issues));
    }
  }

  return (
    <div className="panel">
      <h3>Check reachability</h3>
      <p className="hint" style={{ marginTop: 0 }}>
        Whether a source may connect to a destination under the saved policy.
      </p>
      <form className="form-row" onSubmit={submit} noValidate>
        <label>
          Source
          <input name="src" placeholder="laptop, 100.64.0.1 or ada@example.com" required autoComplete="off" />
          {fields.src ? <span className="field-error">{fields.src}</span> : null}
        </label>
        <label>
          Destination
          <input name="dst" placeholder="db-1 or 10.0.0.5" required autoComplete="off" />
          {fields.dst ? <span className="field-error">{fields.dst}</span> : null}
        </label>
        <label style={{ flex: "0 1 7rem" }}>
          Port
          <input name="port" inputMode="numeric" placeholder="443" autoComplete="off" />
          {fields.port ? <span className="field-error">{fields.port}</span> : null}
        </label>
        <label style={{ flex: "0 1 7rem" }}>
          Protocol
          <select name="proto" defaultValue="tcp">
            <option value="tcp">TCP</option>
            <option value="udp">UDP</option>
            <option value="icmp">ICMP</option>
          </select>
        </label>
        <button type="submit" className="btn btn-secondary" disabled={busy}>
          {busy ? "Checking…" : "Check"}
        </button>
      </form>
      <div aria-live="polite" className="reach-result">
        {error ? (
          <p className="alert alert-error" role="alert" data-testid="reach-result" data-allowed="error">
            {error}
          </p>
        ) : null}
        {result ? (
          <div
            className={`alert ${result.allowed ? "alert-success" : "alert-error"}`}
            data-testid="reach-result"
            data-allowed={result.allowed ? "true" : "false"}
          >
            <strong>{result.allowed ? "Allowed" : "Denied"}</strong>
            <span> — {result.explanation}</span>
            {result.rule ? (
              <div className="small" style={{ marginTop: "0.35rem" }}>
                Rule <code>{`${result.rule.kind}[${result.rule.index}]`}</code>
                {result.rule.text ? (
                  <pre className="json" style={{ marginTop: "0.35rem" }}>
                    {result.rule.text}
                  </pre>
                ) : null}
              </div>
            ) : null}
            {result.dst.via ? (
              <div className="small">Decided by {result.dst.via.name}, which routes to the destination.</div>
            ) : null}
          </div>
        ) : null}
      </div>
    </div>
  );
}
