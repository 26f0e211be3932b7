"use client";

import { useState, type FormEvent } from "react";
import { DnsSettings } from "@trellis/proto/admin";
import type { ApiIssue } from "@/components/api";
import { FieldError, FormActions, FormErrors, hasFieldError } from "@/components/form";
import { useMutation } from "@/components/use-mutation";

/** The request's fields this form shows errors at (magicDns has no message of its own). */
const FIELDS = ["domain", "nameservers", "searchDomains"];

/** Rows of text inputs (nameservers, search domains) with add and remove. */
function ListEditor({
  id,
  legend,
  hint,
  values,
  onChange,
  placeholder,
  max,
  issues,
  path,
  readOnly,
}: {
  id: string;
  legend: string;
  hint: string;
  values: string[];
  onChange: (next: string[]) => void;
  placeholder: string;
  max: number;
  issues: ApiIssue[];
  path: string;
  readOnly: boolean;
}) {
  return (
    <fieldset disabled={readOnly}>
      <legend>{legend}</legend>
      <p className="hint" style={{ marginTop: 0 }}>
        {hint}
      </p>
      <div className="list-rows">
        {values.length === 0 ? (
          <p className="muted small" style={{ margin: 0 }}>
            None.
          </p>
        ) : null}
        {values.map((v, i) => (
          <div key={i}>
            <div className="inline-form">
              <label className="visually-hidden" htmlFor={`${id}-${i}`}>
                {legend} {i + 1}
              </label>
              <input
                id={`${id}-${i}`}
                value={v}
                placeholder={placeholder}
                onChange={(e) => onChange(values.map((x, j) => (j === i ? e.target.value : x)))}
                aria-invalid={hasFieldError(issues, `${path}.${i}`)}
                autoComplete="off"
                spellCheck={false}
                data-testid={`${id}-${i}`}
              />
              {!readOnly ? (
                <button
                  type="button"
                  className="btn btn-ghost btn-sm"
                  aria-label={`Remove ${legend.toLowerCase()} ${v || i + 1}`}
                  onClick={() => onChange(values.filter((_, j) => j !== i))}
                >
                  Remove
                </button>
              ) : null}
            </div>
            <FieldError issues={issues} path={`${path}.${i}`} />
          </div>
        ))}
      </div>
      <FieldError issues={issues} path={path} exact block />
      {!readOnly ? (
        <button
          type="button"
          className="btn btn-secondary btn-sm"
          style={{ marginTop: "0.6rem" }}
          disabled={values.length >= max}
          onClick={() => onChange([...values, ""])}
          data-testid={`${id}-add`}
        >
          Add
        </button>
      ) : null}
    </fieldset>
  );
}

export function DnsForm({ initial, readOnly }: { initial: DnsSettings; readOnly: boolean }) {
  const mut = useMutation();
  const [magicDns, setMagicDns] = useState(initial.magicDns);
  const [domain, setDomain] = useState(initial.domain);
  const [nameservers, setNameservers] = useState(initial.nameservers);
  const [searchDomains, setSearchDomains] = useState(initial.searchDomains);

  async function submit(e: FormEvent) {
    e.preventDefault();
    // Blank rows are dropped (in the form too, so issue paths like "nameservers.1" match the rows).
    const ns = nameservers.map((s) => s.trim()).filter(Boolean);
    const sd = searchDomains.map((s) => s.trim()).filter(Boolean);
    setNameservers(ns);
    setSearchDomains(sd);
    const body: DnsSettings = { magicDns, domain: domain.trim(), nameservers: ns, searchDomains: sd };
    await mut.run("PUT", "/api/v1/dns", DnsSettings, body, { success: "DNS settings saved." });
  }

  return (
    <form className="panel form-grid" onSubmit={submit} noValidate style={{ maxWidth: "40rem" }}>
      <label className="check">
        <input
          type="checkbox"
          checked={magicDns}
          onChange={(e) => setMagicDns(e.target.checked)}
          disabled={readOnly}
          data-testid="magic-dns"
        />
        <span>
          MagicDNS
          <span className="hint" style={{ display: "block" }}>
            Machines reach each other by name (<code>name.{domain || "domain"}</code>).
          </span>
        </span>
      </label>
      <label>
        Domain
        <input
          value={domain}
          onChange={(e) => setDomain(e.target.value)}
          readOnly={readOnly}
          aria-invalid={hasFieldError(mut.issues, "domain")}
          autoComplete="off"
          spellCheck={false}
          placeholder="trellis.internal"
        />
        <span className="hint">The suffix of MagicDNS names.</span>
        <FieldError issues={mut.issues} path="domain" />
      </label>
      <ListEditor
        id="nameserver"
        legend="Nameservers"
        hint="Resolvers machines use for other names (IP addresses, up to 8). Empty: each machine keeps its own."
        values={nameservers}
        onChange={setNameservers}
        placeholder="1.1.1.1"
        max={8}
        issues={mut.issues}
        path="nameservers"
        readOnly={readOnly}
      />
      <ListEditor
        id="search-domain"
        legend="Search domains"
        hint="Tried in order for single-label names (up to 8)."
        values={searchDomains}
        onChange={setSearchDomains}
        placeholder="corp.example.com"
        max={8}
        issues={mut.issues}
        path="searchDomains"
        readOnly={readOnly}
      />
      <FormErrors failure={mut} fields={FIELDS} />
      {mut.success ? (
        <p className="alert alert-success" role="status" data-testid="dns-saved">
          {mut.success}
        </p>
      ) : null}
      {!readOnly ? (
        <FormActions busy={mut.busy} submit="Save" busyLabel="Saving…" />
      ) : (
        <p className="muted small">
          You can view these settings; changing them needs the dns:write permission.
        </p>
      )}
    </form>
  );
}
