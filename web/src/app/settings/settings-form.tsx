"use client";

import { useState, type FormEvent } from "react";
import { TailnetSettings } from "@trellis/proto/admin";
import { FieldError, FormActions, FormErrors, hasFieldError } from "@/components/form";
import { useMutation } from "@/components/use-mutation";

/** The request's fields this form shows errors at (the checkboxes have no message of their own). */
const FIELDS = ["name", "keyExpiryDays", "relayMap"];

export function SettingsForm({ initial, readOnly }: { initial: TailnetSettings; readOnly: boolean }) {
  const mut = useMutation();
  const [name, setName] = useState(initial.name);
  const [nodeApproval, setNodeApproval] = useState(initial.nodeApproval);
  const [keyExpiryDays, setKeyExpiryDays] = useState(String(initial.keyExpiryDays));
  const [persistentBrowserNodes, setPersistentBrowserNodes] = useState(initial.persistentBrowserNodes);
  const [relayMap, setRelayMap] = useState(initial.relayMap ? JSON.stringify(initial.relayMap, null, 2) : "");
  const [relayError, setRelayError] = useState<string | null>(null);

  async function submit(e: FormEvent) {
    e.preventDefault();
    let parsedRelay: unknown = null;
    const text = relayMap.trim();
    if (text !== "" && text !== "null") {
      try {
        parsedRelay = JSON.parse(text);
      } catch (err) {
        setRelayError(`Not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
        return;
      }
    }
    setRelayError(null);
    await mut.run(
      "PUT",
      "/api/v1/settings",
      TailnetSettings,
      {
        name: name.trim(),
        nodeApproval,
        keyExpiryDays: Number(keyExpiryDays),
        persistentBrowserNodes,
        relayMap: parsedRelay as TailnetSettings["relayMap"],
      },
      { success: "Settings saved." },
    );
  }

  return (
    <form className="panel form-grid" onSubmit={submit} noValidate style={{ maxWidth: "44rem" }}>
      <label>
        Tailnet name
        <input
          value={name}
          onChange={(e) => setName(e.target.value)}
          readOnly={readOnly}
          maxLength={100}
          aria-invalid={hasFieldError(mut.issues, "name")}
          data-testid="tailnet-name"
        />
        <FieldError issues={mut.issues} path="name" />
      </label>
      <label className="check">
        <input
          type="checkbox"
          checked={nodeApproval}
          onChange={(e) => setNodeApproval(e.target.checked)}
          disabled={readOnly}
          data-testid="node-approval"
        />
        <span>
          Require approval of new machines
          <span className="hint" style={{ display: "block" }}>
            New machines wait, unable to reach anyone, until an admin approves them on the Machines page.
          </span>
        </span>
      </label>
      <label className="check">
        <input
          type="checkbox"
          checked={persistentBrowserNodes}
          onChange={(e) => setPersistentBrowserNodes(e.target.checked)}
          disabled={readOnly}
          data-testid="persistent-browser-nodes"
        />
        <span>
          Keep browser machines
          <span className="hint" style={{ display: "block" }}>
            Off: a browser that joins from the Connect page is ephemeral, removed a minute after its last
            Trellis tab closes. On: it stays on the Machines page, offline, until its key expires or its owner
            leaves the tailnet.
          </span>
        </span>
      </label>
      <label style={{ maxWidth: "14rem" }}>
        Default key expiry (days)
        <input
          type="number"
          min={1}
          max={365}
          value={keyExpiryDays}
          onChange={(e) => setKeyExpiryDays(e.target.value)}
          readOnly={readOnly}
          aria-invalid={hasFieldError(mut.issues, "keyExpiryDays")}
        />
        <span className="hint">Lifetime of new untagged machine keys (1–365).</span>
        <FieldError issues={mut.issues} path="keyExpiryDays" />
      </label>
      <label>
        Relay map override
        <textarea
          className="code"
          rows={8}
          value={relayMap}
          onChange={(e) => setRelayMap(e.target.value)}
          readOnly={readOnly}
          spellCheck={false}
          placeholder='Empty (or null): the built-in relay map. Otherwise JSON: {"regions": {"1": {…}}}'
          aria-invalid={relayError ? true : hasFieldError(mut.issues, "relayMap")}
        />
        <span className="hint">The relays published to machines. Leave empty to use the built-in map.</span>
        <FieldError issues={mut.issues} path="relayMap" message={relayError} />
      </label>
      <FormErrors failure={mut} fields={FIELDS} />
      {mut.success ? (
        <p className="alert alert-success" role="status" data-testid="settings-saved">
          {mut.success}
        </p>
      ) : null}
      {!readOnly ? (
        <FormActions busy={mut.busy} submit="Save settings" busyLabel="Saving…" />
      ) : (
        <p className="muted small">Changing these needs the settings:write permission.</p>
      )}
    </form>
  );
}
