import type { Metadata } from "next";
import { listApiTokens } from "@trellis/control/auth";
import { getTailnetSettings } from "@trellis/control/settings";
import { ActionButton } from "@/components/action-button";
import { DataTable } from "@/components/data-table";
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
  const [settings, tokens] = await Promise.all([getTailnetSettings(rt, actor), listApiTokens(rt, actor)]);
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
        <DataTable
          rows={active}
          rowKey={(t) => t.id}
          rowTestId={(t) => `token-row-${t.prefix}`}
          empty={
            <p className="muted small" style={{ marginTop: "1rem" }}>
              You have no API tokens.
            </p>
          }
          style={{ marginTop: "1rem" }}
          columns={[
            { header: "Token", cell: (t) => <code>{t.prefix}…</code> },
            { header: "Description", cell: (t) => t.description || <span className="muted">—</span> },
            {
              header: "Scopes",
              cell: (t) => (
                <span className="chips">
                  {t.scopes.map((s) => (
                    <span key={s} className="chip">
                      {s}
                    </span>
                  ))}
                </span>
              ),
            },
            {
              header: "Expires",
              className: "nowrap",
              cell: (t) =>
                Date.parse(t.expiresAt) <= now ? (
                  <span className="badge badge-bad">expired</span>
                ) : (
                  <Time iso={t.expiresAt} />
                ),
            },
            { header: "Last used", className: "nowrap", cell: (t) => <Time iso={t.lastUsedAt} /> },
            {
              header: "Actions",
              hideHeader: true,
              cell: (t) => (
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
              ),
            },
          ]}
        />
      </section>
    </>
  );
}
