"use client";

import { useState, type FormEvent } from "react";
import { ReachabilityResult } from "@trellis/proto/admin";
import { api, type ApiIssue } from "@/components/api";
import { FieldError, FormErrors, SubmitButton, type Failure } from "@/components/form";

/** The request's fields this form shows errors at. */
const FIELDS = ["src", "dst", "port"];

/** "Can A reach B on port P?" under the policy in force (not the unsaved edit). */
export function ReachabilityChecker() {
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<ReachabilityResult | null>(null);
  const [failure, setFailure] = useState<Failure | null>(null);
  const issues: ApiIssue[] = failure?.issues ?? [];

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const data = new FormData(e.currentTarget);
    const proto = String(data.get("proto") ?? "tcp") as "tcp" | "udp" | "icmp";
    const portText = String(data.get("port") ?? "").trim();
    setBusy(true);
    setFailure(null);
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
      setFailure({ error: res.message, issues: res.issues });
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
          <FieldError issues={issues} path="src" />
        </label>
        <label>
          Destination
          <input name="dst" placeholder="db-1 or 10.0.0.5" required autoComplete="off" />
          <FieldError issues={issues} path="dst" />
        </label>
        <label style={{ flex: "0 1 7rem" }}>
          Port
          <input name="port" inputMode="numeric" placeholder="443" autoComplete="off" />
          <FieldError issues={issues} path="port" />
        </label>
        <label style={{ flex: "0 1 7rem" }}>
          Protocol
          <select name="proto" defaultValue="tcp">
            <option value="tcp">TCP</option>
            <option value="udp">UDP</option>
            <option value="icmp">ICMP</option>
          </select>
        </label>
        <SubmitButton busy={busy} label="Check" busyLabel="Checking…" variant="secondary" />
      </form>
      <div aria-live="polite" className="reach-result">
        <FormErrors failure={failure} fields={FIELDS} testId="reach-result" />
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
