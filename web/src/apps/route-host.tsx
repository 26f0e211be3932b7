"use client";

import { useId, useState, type FormEvent } from "react";
import { formatAddr, parseAddr, parsePrefix, prefixContains } from "@trellis/proto/ip";
import { AppLinks } from "@/apps/app-links";
import { useBrowserNode } from "@/node/provider";

/**
 * A host on a machine's subnet routes (a LAN behind a gateway): the user
 * types its address, and the apps the access controls allow there are
 * offered, as for a machine. Exit routes (0.0.0.0/0, ::/0) are not a LAN to
 * pick a host from, so a machine with only those shows nothing; nor does a
 * browser that is not connected (what it may reach depends on its machine).
 */
export function RouteHost({ machine, routes }: { machine: string; routes: string[] }) {
  const id = useId();
  const [text, setText] = useState("");
  const [target, setTarget] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const { state } = useBrowserNode();
  const subnets = routes.flatMap((r) => {
    const p = parsePrefix(r);
    return p && p.bits > 0 ? [{ text: r, prefix: p }] : [];
  });
  if (subnets.length === 0 || state.phase !== "connected") return null;

  function open(e: FormEvent) {
    e.preventDefault();
    const addr = parseAddr(text.trim());
    if (!addr) {
      setTarget(null);
      setError(`"${text.trim()}" is not an IP address.`);
      return;
    }
    if (!subnets.some((s) => prefixContains(s.prefix, addr))) {
      setTarget(null);
      setError(
        `${formatAddr(addr)} is not on ${machine}'s routes (${subnets.map((s) => s.text).join(", ")}).`,
      );
      return;
    }
    setError(null);
    setTarget(formatAddr(addr));
  }

  return (
    <form className="route-host" onSubmit={open} noValidate data-testid="route-host" data-machine={machine}>
      <label className="visually-hidden" htmlFor={id}>
        A host on {machine}&apos;s routes
      </label>
      <span className="route-host-row">
        <input
          id={id}
          className="input-sm mono"
          value={text}
          onChange={(e) => setText(e.target.value)}
          placeholder={subnets[0]!.text}
          autoComplete="off"
          spellCheck={false}
          aria-invalid={error ? true : undefined}
          data-testid="route-host-address"
        />
        <button type="submit" className="btn btn-secondary btn-sm" data-testid="route-host-open">
          Open
        </button>
      </span>
      {error ? (
        <span className="field-error small" role="alert" data-testid="route-host-error">
          {error}
        </span>
      ) : null}
      {target ? (
        <span className="route-host-row" data-testid="route-host-target" data-target={target}>
          <span className="mono small">{target}</span>
          <AppLinks key={target} machine={target} testIdPrefix="route-host" />
        </span>
      ) : null}
    </form>
  );
}
