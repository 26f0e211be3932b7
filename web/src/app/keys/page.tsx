import type { Metadata } from "next";
import { listKeys, listUsers, tagChoices } from "@trellis/control/admin";
import type { PreAuthKeyInfo } from "@trellis/proto";
import { ActionButton } from "@/components/action-button";
import { DataTable, Empty } from "@/components/data-table";
import { Time } from "@/components/time";
import { getRuntime } from "@/lib/api";
import { requirePageActor } from "@/lib/session";
import { KeyForm } from "./key-form";

export const dynamic = "force-dynamic";
export const metadata: Metadata = { title: "Keys" };

function keyState(k: PreAuthKeyInfo): "revoked" | "expired" | "used" | "active" {
  if (k.revokedAt) return "revoked";
  if (Date.parse(k.expiresAt) <= Date.now()) return "expired";
  if (!k.reusable && k.usedCount > 0) return "used";
  return "active";
}

export default async function KeysPage() {
  const actor = await requirePageActor("keys:read", "/keys");
  const rt = getRuntime();
  const canWrite = actor.scopes.has("keys:write");
  const [keys, users] = await Promise.all([
    listKeys(rt, actor),
    actor.scopes.has("users:read") ? listUsers(rt, actor, { limit: "200" }) : Promise.resolve(null),
  ]);
  const emails = new Map((users?.items ?? []).map((u) => [u.id, u.email]));
  const sorted = [...keys].sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));

  return (
    <>
      <div className="page-head">
        <div>
          <h1>Keys</h1>
          <p className="lead">Pre-auth keys let machines join the tailnet without an interactive login.</p>
        </div>
      </div>

      {canWrite ? (
        <KeyForm
          loginServer={rt.config.publicUrl}
          userId={actor.userId}
          email={actor.email}
          tagChoices={await tagChoices(rt, actor)}
        />
      ) : null}

      <section className="section" aria-labelledby="keys-title">
        <h2 id="keys-title">Pre-auth keys</h2>
        <DataTable
          rows={sorted}
          rowKey={(k) => k.id}
          rowTestId={(k) => `key-row-${k.prefix}`}
          empty={
            <Empty title="No keys yet" testId="keys-empty">
              <p>Generate a key above, then use it on a machine with “trellis up”.</p>
            </Empty>
          }
          columns={[
            { header: "Key", cell: (k) => <code>{k.prefix}…</code> },
            {
              header: "Type",
              cell: (k) => (
                <span className="chips">
                  <span className="badge">{k.reusable ? "reusable" : "single use"}</span>
                  {k.ephemeral ? <span className="badge badge-info">ephemeral</span> : null}
                </span>
              ),
            },
            {
              header: "Owner",
              cell: (k) =>
                k.tags.length ? (
                  <span className="chips">
                    {k.tags.map((t) => (
                      <span key={t} className="chip">
                        {t}
                      </span>
                    ))}
                  </span>
                ) : k.userId ? (
                  (emails.get(k.userId) ?? <span className="mono small">{k.userId}</span>)
                ) : (
                  "—"
                ),
            },
            { header: "Created", cell: (k) => <Time iso={k.createdAt} /> },
            {
              header: "Expires",
              cell: (k) =>
                keyState(k) === "expired" ? (
                  <span className="badge badge-bad">expired</span>
                ) : (
                  <Time iso={k.expiresAt} />
                ),
            },
            { header: "Used", num: true, cell: (k) => k.usedCount },
            {
              header: "Status",
              cell: (k) => {
                const state = keyState(k);
                return state === "active" ? (
                  <span className="badge badge-ok">active</span>
                ) : state === "revoked" ? (
                  <span className="badge badge-bad">revoked</span>
                ) : (
                  <span className="badge">{state}</span>
                );
              },
            },
            canWrite && {
              header: "Actions",
              hideHeader: true,
              cell: (k) =>
                keyState(k) === "revoked" ? null : (
                  <ActionButton
                    label="Revoke"
                    method="DELETE"
                    url={`/api/v1/keys/${encodeURIComponent(k.id)}`}
                    answer="preAuthKey"
                    variant="ghost"
                    ariaLabel={`Revoke key ${k.prefix}`}
                    testId={`revoke-key-${k.prefix}`}
                    confirm={{
                      title: `Revoke key ${k.prefix}…?`,
                      message: "Machines can no longer register with it. Machines that already joined stay.",
                      confirmLabel: "Revoke key",
                    }}
                  />
                ),
            },
          ]}
        />
      </section>
    </>
  );
}
