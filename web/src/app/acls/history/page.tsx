import type { Metadata } from "next";
import Link from "next/link";
import { getPolicy, getPolicyVersion, listPolicyVersions } from "@trellis/control/admin";
import { ControlError } from "@trellis/control/errors";
import { ActionButton } from "@/components/action-button";
import { DataTable } from "@/components/data-table";
import { DiffView } from "@/components/diff-view";
import { formatDate, firstParam, hrefWith } from "@/components/format";
import { Pager } from "@/components/pager";
import { Time } from "@/components/time";
import { getRuntime } from "@/lib/api";
import { requirePageActor } from "@/lib/session";

export const dynamic = "force-dynamic";
export const metadata: Metadata = { title: "Policy history" };

type SearchParams = Promise<Record<string, string | string[] | undefined>>;

export default async function PolicyHistoryPage({ searchParams }: { searchParams: SearchParams }) {
  const actor = await requirePageActor("policy:read", "/acls/history");
  const params = await searchParams;
  const cursor = firstParam(params.cursor) || undefined;
  const diffParam = firstParam(params.diff);
  const diffId = diffParam ? Number(diffParam) : NaN;
  const ctx = getRuntime();
  const canWrite = actor.scopes.has("policy:write");

  const [page, current] = await Promise.all([
    listPolicyVersions(ctx, actor, { ...(cursor ? { cursor } : {}), limit: "50" }),
    getPolicy(ctx, actor),
  ]);
  let compared: { id: number; createdAt: string; createdByName: string; text: string } | null = null;
  let compareError: string | null = null;
  if (Number.isSafeInteger(diffId) && diffId >= 0) {
    try {
      compared = await getPolicyVersion(ctx, actor, diffId);
    } catch (err) {
      if (!ControlError.is(err)) throw err;
      compareError = err.message;
    }
  }

  return (
    <>
      <div className="page-head">
        <div>
          <h1>Access controls</h1>
          <p className="lead">
            Every saved version of the policy file. Restoring saves an old version as a new one.
          </p>
        </div>
      </div>
      <nav className="tabs" aria-label="Access controls">
        <Link href="/acls">Policy file</Link>
        <Link href="/acls/history" aria-current="page">
          History
        </Link>
      </nav>

      {compareError ? (
        <p className="alert alert-error" role="alert">
          {compareError}
        </p>
      ) : null}
      {compared ? (
        <section
          className="panel"
          aria-labelledby="diff-title"
          data-testid="policy-diff"
          style={{ marginBottom: "1.25rem" }}
        >
          <div className="row" style={{ marginBottom: "0.6rem" }}>
            <h2 id="diff-title" className="section-title" style={{ margin: 0 }}>
              Version {compared.id} → current (version {current.version})
            </h2>
            <span className="spacer" />
            <Link className="btn btn-ghost btn-sm" href={hrefWith("/acls/history", { cursor })}>
              Close
            </Link>
          </div>
          <p className="hint" style={{ marginTop: 0 }}>
            Red lines are in version {compared.id} only; green lines are in the current policy only.
          </p>
          <DiffView
            from={compared.text}
            to={current.text}
            label={`Changes from version ${compared.id} to the current policy`}
          />
        </section>
      ) : null}

      <DataTable
        rows={page.items}
        rowKey={(v) => v.id}
        rowTestId={(v) => `policy-version-${v.id}`}
        columns={[
          {
            header: "Version",
            cell: (v) => (
              <>
                <span className="cell-title">v{v.id}</span>{" "}
                {v.id === 0 ? <span className="badge">built-in default</span> : null}{" "}
                {v.current ? <span className="badge badge-ok">current</span> : null}
              </>
            ),
          },
          {
            header: "Saved",
            cell: (v) => (
              <span title={formatDate(v.createdAt)}>
                <Time iso={v.createdAt} />
              </span>
            ),
          },
          { header: "Author", cell: (v) => (v.id === 0 ? "Trellis" : v.createdByName) },
          { header: "Size", num: true, cell: (v) => `${v.bytes.toLocaleString("en-US")} B` },
          {
            header: "Actions",
            hideHeader: true,
            className: "nowrap",
            cell: (v) =>
              v.current ? null : (
                <span className="row">
                  <Link
                    className="btn btn-secondary btn-sm"
                    href={hrefWith("/acls/history", { cursor, diff: String(v.id) })}
                  >
                    View diff
                  </Link>
                  {canWrite ? (
                    <ActionButton
                      label="Restore"
                      method="POST"
                      url={`/api/v1/policy/versions/${v.id}/restore`}
                      answer="savedPolicy"
                      variant="secondary"
                      ariaLabel={`Restore version ${v.id}`}
                      testId={`restore-${v.id}`}
                      confirm={{
                        title: `Restore version ${v.id}?`,
                        message: `Its text is saved as a new version and takes effect at once, replacing version ${current.version}.`,
                        confirmLabel: "Restore",
                      }}
                    />
                  ) : null}
                </span>
              ),
          },
        ]}
      />
      <Pager path="/acls/history" params={{}} cursor={cursor} page={page} noun="version" />
    </>
  );
}
