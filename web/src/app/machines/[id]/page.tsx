import type { Metadata } from "next";
import Link from "next/link";
import { notFound } from "next/navigation";
import { getMachine, tagChoices, wireGuardPeerConfig } from "@trellis/control/admin";
import { ControlError } from "@trellis/control/errors";
import type { MachineInfo, WireGuardPeerConfig } from "@trellis/proto";
import { CopyButton } from "@/components/copy-button";
import { AppLinks } from "@/apps/app-links";
import { Copyable } from "@/components/copy-button";
import { formatDate } from "@/components/format";
import { KeyExpiry, MachineStatus, Owner } from "@/components/machine-bits";
import { Time } from "@/components/time";
import { getRuntime } from "@/lib/api";
import { requirePageActor } from "@/lib/session";
import { MachineEditor } from "./machine-editor";

export const dynamic = "force-dynamic";
export const metadata: Metadata = { title: "Machine" };

async function load(id: string, actor: Awaited<ReturnType<typeof requirePageActor>>): Promise<MachineInfo> {
  try {
    return await getMachine(getRuntime(), actor, id);
  } catch (err) {
    // A machine that does not exist, or (for members) is not theirs.
    if (ControlError.is(err) && (err.status === 404 || err.status === 403)) notFound();
    throw err;
  }
}

export default async function MachinePage({
  params,
  searchParams,
}: {
  params: Promise<{ id: string }>;
  searchParams: Promise<Record<string, string | string[] | undefined>>;
}) {
  const { id } = await params;
  // A plain WireGuard peer's file with its gateway as exit node (`?exit=1`).
  const exit = (await searchParams).exit === "1";
  const actor = await requirePageActor("machines:read", `/machines/${id}`);
  const m = await load(id, actor);
  const canWrite =
    actor.scopes.has("machines:write") && (actor.role === "admin" || m.user?.id === actor.userId);
  const isAdmin = actor.role === "admin" && actor.scopes.has("machines:write");
  // A plain WireGuard peer's file, without its private key (that was made in a browser, or is the peer's own).
  let wg: WireGuardPeerConfig | { error: string } | null = null;
  if (m.wireguard) {
    try {
      wg = await wireGuardPeerConfig(getRuntime(), actor, m.id, exit ? { exitNode: "true" } : {});
    } catch (err) {
      if (!ControlError.is(err)) throw err;
      wg = { error: err.message };
    }
  }

  return (
    <>
      <div className="breadcrumb">
        <Link href="/machines">← Machines</Link>
      </div>
      <div className="page-head">
        <div>
          <h1 data-testid="machine-name">{m.name}</h1>
          <p className="lead row">
            <span className="mono">{m.dnsName}</span>
            <MachineStatus m={m} />
          </p>
        </div>
        {m.online ? <AppLinks machine={m.name} ping /> : null}
      </div>

      <div className="cols">
        <section className="panel" aria-labelledby="details-title">
          <h2 id="details-title" className="section-title">
            Details
          </h2>
          <dl className="props">
            <dt>Owner</dt>
            <dd>
              <Owner m={m} />
            </dd>
            <dt>IPv4</dt>
            <dd>{m.ipv4 ? <Copyable value={m.ipv4} what="IPv4 address" /> : "—"}</dd>
            <dt>IPv6</dt>
            <dd>{m.ipv6 ? <Copyable value={m.ipv6} what="IPv6 address" /> : "—"}</dd>
            <dt>Hostname</dt>
            <dd>{m.hostname}</dd>
            <dt>OS</dt>
            <dd>{m.os || "—"}</dd>
            <dt>Node key</dt>
            <dd>
              <Copyable value={m.nodeKey} what="node key" />
            </dd>
            <dt>Created</dt>
            <dd>{formatDate(m.createdAt)}</dd>
            <dt>Last seen</dt>
            <dd>{m.online ? "now (online)" : <Time iso={m.lastSeen} />}</dd>
            <dt>Key expiry</dt>
            <dd>
              <KeyExpiry m={m} />
              {m.keyExpiry ? <span className="cell-sub">{formatDate(m.keyExpiry)}</span> : null}
            </dd>
            <dt>Approval</dt>
            <dd>
              {m.authorized ? "Approved" : <span className="badge badge-warn">Waiting for an admin</span>}
            </dd>
            <dt>Ephemeral</dt>
            <dd>{m.ephemeral ? "Yes: removed soon after it goes offline" : "No"}</dd>
            <dt>Home relay</dt>
            <dd>{m.homeRegion ?? "—"}</dd>
            <dt>Endpoints</dt>
            <dd>
              {m.endpoints.length ? (
                <span className="chips">
                  {m.endpoints.map((e) => (
                    <span className="chip" key={e}>
                      {e}
                    </span>
                  ))}
                </span>
              ) : (
                "—"
              )}
            </dd>
          </dl>
        </section>

        {wg ? (
          <section className="panel" aria-labelledby="wg-title" data-testid="wireguard-peer">
            <h2 id="wg-title" className="section-title">
              Plain WireGuard peer
            </h2>
            {"error" in wg ? (
              <p className="alert alert-warn">{wg.error}</p>
            ) : (
              <>
                <p className="small">
                  It reaches the tailnet through{" "}
                  <Link href={`/machines/${wg.gateway.id}`}>{wg.gateway.name}</Link>, and other machines reach
                  it through {wg.gateway.name}, as the policy allows. Its wg-quick file, without the private
                  key
                  {exit ? `, sending all its traffic through ${wg.gateway.name} (exit node)` : ""}:
                </p>
                {wg.exitRoutes.length > 0 ? (
                  <p className="small">
                    {exit ? (
                      <Link href={`/machines/${m.id}`} data-testid="wireguard-exit-toggle">
                        Show the file without the exit node
                      </Link>
                    ) : (
                      <Link href={`/machines/${m.id}?exit=1`} data-testid="wireguard-exit-toggle">
                        Show the file that uses {wg.gateway.name} as exit node
                      </Link>
                    )}
                  </p>
                ) : null}
                <p className="small">
                  Its public key, as <code>wg</code> shows it:{" "}
                  <Copyable value={wg.publicKey} what="WireGuard public key" />
                </p>
                <div className="secret">
                  <pre data-testid="wireguard-config">{wg.config}</pre>
                  <CopyButton
                    value={wg.config}
                    what="WireGuard configuration"
                    className="btn btn-secondary btn-sm"
                  />
                </div>
              </>
            )}
          </section>
        ) : null}

        <MachineEditor
          machine={{
            id: m.id,
            name: m.name,
            tags: m.tags,
            hasUser: m.user !== null,
            authorized: m.authorized,
            expired: m.expired,
            keyExpiryDisabled: m.keyExpiry === null,
            advertisedRoutes: m.advertisedRoutes,
            approvedRoutes: m.approvedRoutes,
            exitNodeAdvertised: m.exitNodeAdvertised,
            exitNodeApproved: m.exitNodeApproved,
          }}
          canWrite={canWrite}
          isAdmin={isAdmin}
          tagChoices={canWrite ? await tagChoices(getRuntime(), actor) : []}
        />
      </div>
    </>
  );
}
