"use client";

import { useState, type FormEvent } from "react";
import {
  generateWireGuardKeyPair,
  MachineInfo,
  WireGuardPeerConfig,
  wgQuickConfig,
  type CreateWireGuardPeerRequest,
} from "@trellis/proto/admin";
import { api } from "@/components/api";
import { CopyButton } from "@/components/copy-button";
import { FieldError, FormActions, FormErrors } from "@/components/form";
import { useMutation } from "@/components/use-mutation";

/** The request's fields this form shows errors at. */
const FIELDS = ["name", "gatewayId", "publicKey", "tags"];

export interface GatewayChoice {
  id: string;
  name: string;
  /** The UDP endpoints it published; the file names the one chosen. */
  endpoints: string[];
  /** An approved exit node: the file can send all the peer's traffic through it. */
  exitNode: boolean;
}

/**
 * "Add WireGuard peer" (admins): a machine for wg-quick, wireguard-go or a
 * phone's WireGuard app, reaching the tailnet through a gateway. The key
 * pair is made here, in this browser, or the peer's public key is pasted;
 * either way only the public key goes to the server, and the wg-quick file
 * gets its private key here.
 */
export function WireGuardPeerForm({
  gateways,
  tagChoices,
}: {
  gateways: GatewayChoice[];
  tagChoices: string[];
}) {
  const mut = useMutation();
  const [open, setOpen] = useState(false);
  const [mode, setMode] = useState<"generate" | "paste">("generate");
  const [made, setMade] = useState<{ name: string; text: string; withKey: boolean } | null>(null);
  const [fetchError, setFetchError] = useState<string | null>(null);
  const [gatewayId, setGatewayId] = useState(gateways[0]?.id ?? "");
  const gateway = gateways.find((g) => g.id === gatewayId);
  const endpoints = gateway?.endpoints ?? [];

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    setFetchError(null);
    const form = e.currentTarget;
    const data = new FormData(form);
    const tags = data.getAll("tags").map(String);
    // The private key stays in this function's memory and in the file shown below: it is never sent.
    const pair = mode === "generate" ? generateWireGuardKeyPair() : null;
    const body: CreateWireGuardPeerRequest = {
      name: String(data.get("name") ?? "").trim(),
      gatewayId: String(data.get("gatewayId") ?? ""),
      publicKey: pair ? pair.publicKey : String(data.get("publicKey") ?? "").trim(),
      ...(tags.length > 0 ? { tags } : {}),
    };
    const res = await mut.run("POST", "/api/v1/machines/wireguard", MachineInfo, body);
    if (!res.ok) return;
    // The file names the endpoint chosen here (the server's default is the gateway's first).
    const params = new URLSearchParams();
    const endpoint = data.get("endpoint");
    if (endpoint) params.set("endpoint", String(endpoint));
    if (data.get("exitNode") === "true") params.set("exitNode", "true");
    const file = () =>
      api(
        "GET",
        `/api/v1/machines/${encodeURIComponent(res.data.id)}/wireguard${params.size > 0 ? `?${params.toString()}` : ""}`,
        WireGuardPeerConfig,
      );
    let conf = await file();
    // The machine exists now (and a key pair made here lives only in this function): a gateway the
    // policy does not let it use as exit node still gets it a file, without the exit routes.
    if (!conf.ok && params.has("exitNode")) {
      setFetchError(`The file does not use ${gateway?.name ?? "the gateway"} as exit node: ${conf.message}`);
      params.delete("exitNode");
      conf = await file();
    }
    if (!conf.ok) {
      setFetchError(`The machine was added, but its file could not be read: ${conf.message}`);
      return;
    }
    const c = conf.data;
    const text = pair
      ? wgQuickConfig({
          name: c.name,
          addresses: c.addresses,
          gatewayName: c.gateway.name,
          gatewayPublicKey: c.gateway.publicKey,
          endpoint: c.gateway.endpoint,
          allowedIPs: c.allowedIPs,
          persistentKeepalive: c.persistentKeepalive,
          publicKey: c.publicKey,
          privateKey: pair.privateKey,
        })
      : c.config;
    setMade({ name: c.name, text, withKey: pair !== null });
    setOpen(false);
    form.reset();
  }

  function download() {
    if (!made) return;
    const url = URL.createObjectURL(new Blob([made.text], { type: "text/plain" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = `${made.name}.conf`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  return (
    <>
      {fetchError ? (
        <p className="alert alert-error" role="alert">
          {fetchError}
        </p>
      ) : null}
      {made ? (
        <div className="secret-panel" data-testid="wireguard-peer-made">
          <h3>WireGuard configuration for {made.name}</h3>
          <p className="alert alert-warn" role="status">
            {made.withKey
              ? "This file holds the peer's private key, made in this browser and never sent to the server: download it now, it cannot be shown again."
              : "Put the peer's private key in the PrivateKey line: Trellis never had it."}
          </p>
          <div className="secret">
            <pre data-testid="wireguard-config">{made.text}</pre>
          </div>
          <div className="form-actions">
            <button
              type="button"
              className="btn btn-primary btn-sm"
              onClick={download}
              data-testid="wireguard-download"
            >
              Download {made.name}.conf
            </button>
            <CopyButton
              value={made.text}
              what="WireGuard configuration"
              className="btn btn-secondary btn-sm"
            />
            <button type="button" className="btn btn-ghost btn-sm" onClick={() => setMade(null)}>
              Done
            </button>
          </div>
          <p className="small muted" style={{ margin: 0 }}>
            Use it with <code>wg-quick up ./{made.name}.conf</code> or import it in a WireGuard app.
          </p>
        </div>
      ) : null}

      {!open ? (
        <div className="form-actions" style={{ marginTop: made ? "1rem" : 0, marginBottom: "1rem" }}>
          <button
            type="button"
            className="btn btn-secondary"
            onClick={() => {
              mut.reset();
              setOpen(true);
            }}
            data-testid="add-wireguard-peer"
          >
            Add WireGuard peer…
          </button>
        </div>
      ) : (
        <form className="panel form-grid" onSubmit={submit} noValidate aria-labelledby="wg-title">
          <h3 id="wg-title">Add a WireGuard peer</h3>
          <p className="hint" style={{ margin: 0 }}>
            A device running plain WireGuard (wg-quick, a WireGuard app) that reaches the tailnet through a
            gateway; other machines reach it through the gateway, as the policy allows.
          </p>
          <label>
            Name
            <input name="name" required maxLength={63} autoComplete="off" placeholder="laptop-wg" />
            <FieldError issues={mut.issues} path="name" />
          </label>
          <label>
            Gateway
            {gateways.length === 0 ? (
              <span className="hint" style={{ display: "block" }}>
                No gateway publishes a UDP endpoint yet: start one with <code>trellis up</code>.
              </span>
            ) : (
              <select name="gatewayId" value={gatewayId} onChange={(e) => setGatewayId(e.target.value)}>
                {gateways.map((g) => (
                  <option key={g.id} value={g.id}>
                    {g.name}
                  </option>
                ))}
              </select>
            )}
            <FieldError issues={mut.issues} path="gatewayId" />
          </label>
          {endpoints.length > 0 ? (
            <label>
              Gateway endpoint
              <select name="endpoint" key={gatewayId} defaultValue={endpoints[0]}>
                {endpoints.map((e) => (
                  <option key={e} value={e}>
                    {e}
                  </option>
                ))}
              </select>
              <span className="hint" style={{ display: "block" }}>
                The address and UDP port the peer sends to: one the peer can reach (the gateway&apos;s public
                address for a peer on the internet).
              </span>
            </label>
          ) : null}
          {gateway?.exitNode ? (
            <label className="check">
              <input type="checkbox" name="exitNode" value="true" key={gatewayId} />
              <span>
                Send all its traffic through {gateway.name} (exit node; the policy must let it reach{" "}
                <code>autogroup:internet</code>)
              </span>
            </label>
          ) : null}
          <fieldset>
            <legend>Key pair</legend>
            <label className="check">
              <input
                type="radio"
                name="keyMode"
                value="generate"
                checked={mode === "generate"}
                onChange={() => setMode("generate")}
              />
              <span>Generate a key pair in this browser (the private key is never sent)</span>
            </label>
            <label className="check" style={{ marginTop: "0.5rem" }}>
              <input
                type="radio"
                name="keyMode"
                value="paste"
                checked={mode === "paste"}
                onChange={() => setMode("paste")}
              />
              <span>Paste the peer&apos;s public key</span>
            </label>
            {mode === "paste" ? (
              <label style={{ marginTop: "0.5rem" }}>
                Public key
                <input
                  name="publicKey"
                  required
                  maxLength={44}
                  autoComplete="off"
                  spellCheck={false}
                  placeholder="output of wg pubkey (44 characters)"
                />
              </label>
            ) : null}
            <FieldError issues={mut.issues} path="publicKey" />
          </fieldset>
          {tagChoices.length > 0 ? (
            <fieldset>
              <legend>Tags</legend>
              <span className="chips">
                {tagChoices.map((t) => (
                  <label className="check" key={t}>
                    <input type="checkbox" name="tags" value={t} /> <span>{t}</span>
                  </label>
                ))}
              </span>
              <span className="hint" style={{ display: "block" }}>
                Optional. Without tags the peer belongs to you; with tags, to the tags.
              </span>
              <FieldError issues={mut.issues} path="tags" />
            </fieldset>
          ) : null}
          <FormErrors failure={mut} fields={FIELDS} />
          <FormActions
            busy={mut.busy}
            submit="Add peer"
            busyLabel="Adding…"
            onCancel={() => setOpen(false)}
          />
        </form>
      )}
    </>
  );
}
