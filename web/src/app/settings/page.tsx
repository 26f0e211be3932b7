import type { Metadata } from "next";
import { listApiTokens } from "@trellis/control/auth";
import { getTailnetSettings } from "@trellis/control/settings";
import { ActionButton } from "@/components/action-button";
import { Time } from "@/components/time";
import { getRuntime } from "@/lib/api";
import { requirePageActor } from "@/lib/session";
import { SettingsForm } from "./settings-form";
import { TokenForm } from "./token-form";

export const dynamic = "force-dynamic";
export const metadata: Metadata = { title: "Settings" };

export default async function SettingsPage() {
  const actor = await requirePageActor("settings:read", "/settings");
  const rt = getRuntime();
  const [settings, tokens] = await Promise.all([getTailnetSettings(rt, actor), listApiTokens(rt.db, actor)]);
  const now = Date.now();
  const active = tokens.filter((t) => !t.revokedAt);
  return (
    <>
      <div className="page-head">
        <div>
          <h1>Settings</h1>
          <p className="lead">Tailnet-wide options and your API tokens.</p>
        </div>
      </div>

      <section aria-labelledby="tailnet-title">
        <h2 id="tailnet-title" className="section-title">
          Tailnet
        </h2>
        <SettingsForm initial={settings} readOnly={!actor.scopes.has("settings:write")} />
      </section>

      <section className="section" aria-labelledby="tokens-title">
        <h2 id="tokens-title">API tokens</h2>
        <p className="muted small" style={{ marginTop: "-0.4rem" }}>
          For scripts and automation: <code>Authorization: Bearer &lt;token&gt;</code> on the admin API. A
          token never exceeds your role, and only you see your tokens.
        </p>
        <TokenForm scopes={[...actor.scopes]} />
        {active.length === 0 ? (
          <p className="muted small" style={{ marginTop: "1rem" }}>
            You have no API tokens.
          </p>
        ) : (
          <div className="table-wrap" style={{ marginTop: "1rem" }}>
            <table className="data">
              <thead>
                <tr>
                  <th scope="col">Token</th>
                  <th scope="col">Description</th>
                  <th scope="col">Scopes</th>
                  <th scope="col">Expires</th>
                  <th scope="col">Last used</th>
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {active.map((t) => (
                  <tr key={t.id} data-testid={`token-row-${t.prefix}`}>
                    <td>
                      <code>{t.prefix}…</code>
                    </td>
                    <td>{t.description || <span className="muted">—</span>}</td>
                    <td>
                      <span className="chips">
                        {t.scopes.map((s) => (
                          <span key={s} className="chip">
                            {s}
                          </span>
                        ))}
                      </span>
                    </td>
                    <td className="nowrap">
                      {Date.parse(t.expiresAt) <= now ? (
                        <span className="badge badge-bad">expired</span>
                      ) : (
                        <Time iso={t.expiresAt} />
                      )}
                    </td>
                    <td className="nowrap">
                      <Time iso={t.lastUsedAt} />
                    </td>
                    <td>
                      <ActionButton
                        label="Revoke"
                        method="DELETE"
                        url={`/api/v1/tokens/${encodeURIComponent(t.id)}`}
                        answer="apiToken"
                        variant="ghost"
                        ariaLabel={`Revoke token ${t.prefix}`}
                        testId={`revoke-token-${t.prefix}`}
                        confirm={{
                          title: `Revoke token ${t.prefix}…?`,
                          message: "Scripts using it stop working at once.",
                          confirmLabel: "Revoke token",
                        }}
                      />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </>
  );
}
