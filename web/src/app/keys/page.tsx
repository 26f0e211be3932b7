import type { Metadata } from "next";
import { listUsers } from "@trellis/control/admin";
import type { PreAuthKeyInfo } from "@trellis/proto";
import { ActionButton } from "@/components/action-button";
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
    rt.listPreAuthKeys(),
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
        <KeyForm loginServer={rt.config.publicUrl} userId={actor.userId} email={actor.email} />
      ) : null}

      <section className="section" aria-labelledby="keys-title">
        <h2 id="keys-title">Pre-auth keys</h2>
        {sorted.length === 0 ? (
          <div className="empty" data-testid="keys-empty">
            <h2>No keys yet</h2>
            <p>Generate a key above, then use it on a machine with “trellis up”.</p>
          </div>
        ) : (
          <div className="table-wrap">
            <table className="data">
              <thead>
                <tr>
                  <th scope="col">Key</th>
                  <th scope="col">Type</th>
                  <th scope="col">Owner</th>
                  <th scope="col">Created</th>
                  <th scope="col">Expires</th>
                  <th scope="col" className="num">
                    Used
                  </th>
                  <th scope="col">Status</th>
                  {canWrite ? (
                    <th scope="col">
                      <span className="visually-hidden">Actions</span>
                    </th>
                  ) : null}
                </tr>
              </thead>
              <tbody>
                {sorted.map((k) => {
                  const state = keyState(k);
                  return (
                    <tr key={k.id} data-testid={`key-row-${k.prefix}`}>
                      <td>
                        <code>{k.prefix}…</code>
                      </td>
                      <td>
                        <span className="chips">
                          <span className="badge">{k.reusable ? "reusable" : "single use"}</span>
                          {k.ephemeral ? <span className="badge badge-info">ephemeral</span> : null}
                        </span>
                      </td>
                      <td>
                        {k.tags.length ? (
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
                        )}
                      </td>
                      <td>
                        <Time iso={k.createdAt} />
                      </td>
                      <td>
                        {state === "expired" ? (
                          <span className="badge badge-bad">expired</span>
                        ) : (
                          <Time iso={k.expiresAt} />
                        )}
                      </td>
                      <td className="num">{k.usedCount}</td>
                      <td>
                        {state === "active" ? (
                          <span className="badge badge-ok">active</span>
                        ) : state === "revoked" ? (
                          <span className="badge badge-bad">revoked</span>
                        ) : (
                          <span className="badge">{state}</span>
                        )}
                      </td>
                      {canWrite ? (
                        <td>
                          {state === "revoked" ? null : (
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
                                message:
                                  "Machines can no longer register with it. Machines that already joined stay.",
                                confirmLabel: "Revoke key",
                              }}
                            />
                          )}
                        </td>
                      ) : null}
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </>
  );
}
