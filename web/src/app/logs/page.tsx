import type { Metadata } from "next";
import Link from "next/link";
import { listAudit, listConnections, listMachines, listUsers } from "@trellis/control/admin";
import type { AuditEventInfo, ConnectionInfo } from "@trellis/proto";
import { DataTable, Empty } from "@/components/data-table";
import { DiffView } from "@/components/diff-view";
import { FilterBar, SelectFilter, TextFilter } from "@/components/filter-bar";
import {
  actionLabel,
  actionQuery,
  firstParam,
  formatBytes,
  formatDate,
  protoName,
  queryRecord,
} from "@/components/format";
import { Pager } from "@/components/pager";
import { Time } from "@/components/time";
import { getRuntime } from "@/lib/api";
import { requirePageActor } from "@/lib/session";

export const dynamic = "force-dynamic";
export const metadata: Metadata = { title: "Logs" };

type SearchParams = Promise<Record<string, string | string[] | undefined>>;

const RANGES: { value: string; label: string; ms: number }[] = [
  { value: "1h", label: "Last hour", ms: 3600e3 },
  { value: "24h", label: "Last 24 hours", ms: 24 * 3600e3 },
  { value: "7d", label: "Last 7 days", ms: 7 * 24 * 3600e3 },
  { value: "30d", label: "Last 30 days", ms: 30 * 24 * 3600e3 },
];

/** `since` for a range choice; undefined for "all time". */
function sinceOf(range: string | undefined): string | undefined {
  const r = RANGES.find((x) => x.value === range);
  return r ? new Date(Date.now() - r.ms).toISOString() : undefined;
}

const RANGE_OPTIONS = [{ value: "", label: "All time" }, ...RANGES];

function RangeSelect({ id, value }: { id: string; value: string | undefined }) {
  return <SelectFilter id={id} name="range" label="Time range" value={value} options={RANGE_OPTIONS} />;
}

export default async function LogsPage({ searchParams }: { searchParams: SearchParams }) {
  const actor = await requirePageActor("logs:read", "/logs");
  const params = await searchParams;
  const tab = firstParam(params.tab) === "connections" ? "connections" : "audit";
  return (
    <>
      <div className="page-head">
        <div>
          <h1>Logs</h1>
          <p className="lead">Who changed what in the tailnet, and which connections machines reported.</p>
        </div>
      </div>
      <nav className="tabs" aria-label="Logs">
        <Link href="/logs" aria-current={tab === "audit" ? "page" : undefined}>
          Audit
        </Link>
        <Link href="/logs?tab=connections" aria-current={tab === "connections" ? "page" : undefined}>
          Connections
        </Link>
      </nav>
      {tab === "audit" ? (
        <AuditTab actor={actor} params={params} />
      ) : (
        <ConnectionsTab actor={actor} params={params} />
      )}
    </>
  );
}

type Actor = Awaited<ReturnType<typeof requirePageActor>>;
type Params = Record<string, string | string[] | undefined>;

async function AuditTab({ actor, params }: { actor: Actor; params: Params }) {
  const filters = queryRecord(params, ["action", "actor", "range"]);
  const cursor = firstParam(params.cursor) || undefined;
  const since = sinceOf(filters.range);
  const page = await listAudit(getRuntime(), actor, {
    ...(filters.action ? { action: actionQuery(filters.action) } : {}),
    ...(filters.actor ? { actor: filters.actor } : {}),
    ...(since ? { since } : {}),
    ...(cursor ? { cursor } : {}),
    limit: "50",
  });
  const filtered = Boolean(filters.action || filters.actor || filters.range);
  return (
    <>
      <FilterBar action="/logs" clearHref="/logs" filtered={filtered}>
        <TextFilter
          id="audit-action"
          name="action"
          label="Action"
          value={filters.action}
          placeholder="Action, e.g. machine.rename or policy."
        />
        <TextFilter
          id="audit-actor"
          name="actor"
          label="Actor"
          value={filters.actor}
          placeholder="Actor email"
        />
        <RangeSelect id="audit-range" value={filters.range} />
      </FilterBar>
      <DataTable
        rows={page.items}
        rowKey={(e) => e.id}
        rowTestId={() => "audit-row"}
        empty={
          <Empty title={filtered ? "No events match" : "No events yet"}>
            <p>Changes to machines, users, keys, the policy and settings are recorded here.</p>
          </Empty>
        }
        columns={[
          {
            header: "When",
            className: "nowrap",
            cell: (e) => (
              <>
                <Time iso={e.at} />
                <span className="cell-sub">{formatDate(e.at)}</span>
              </>
            ),
          },
          {
            header: "Who",
            cell: (e) => <span title={e.actor}>{e.actorName}</span>,
          },
          { header: "Action", cell: (e) => <code>{actionLabel(e.action)}</code> },
          {
            header: "Target",
            cell: (e) => (
              <span title={e.target} data-testid="audit-target">
                {e.targetName}
              </span>
            ),
          },
          { header: "Details", style: { minWidth: "16rem" }, cell: (e) => <AuditDetail e={e} /> },
        ]}
      />
      <div className="row" style={{ marginTop: "0.75rem" }}>
        <Pager path="/logs" params={filters} cursor={cursor} page={page} noun="event" />
        <span className="spacer" />
        {(["csv", "json"] as const).map((format) => (
          <a
            key={format}
            className="btn btn-secondary btn-sm"
            data-testid={`audit-export-${format}`}
            href={`/api/v1/audit/export?${new URLSearchParams({
              format,
              ...(filters.action ? { action: actionQuery(filters.action) } : {}),
              ...(filters.actor ? { actor: filters.actor } : {}),
              ...(since ? { since } : {}),
            }).toString()}`}
            download
          >
            Export {format.toUpperCase()}
          </a>
        ))}
      </div>
    </>
  );
}

function pretty(v: unknown): string {
  return v === undefined ? "" : JSON.stringify(v, null, 2);
}

function AuditDetail({ e }: { e: AuditEventInfo }) {
  const { before, after, ...rest } = e.detail as { before?: unknown; after?: unknown } & Record<
    string,
    unknown
  >;
  const hasDiff = before !== undefined || after !== undefined;
  const hasRest = Object.keys(rest).length > 0;
  if (!hasDiff && !hasRest) return <span className="muted">—</span>;
  return (
    <details className="expander">
      <summary>{hasDiff ? "Show changes" : "Show details"}</summary>
      {hasDiff ? (
        <DiffView
          from={pretty(before)}
          to={pretty(after)}
          label={`Changes made by ${actionLabel(e.action)}`}
        />
      ) : null}
      {hasRest ? (
        <pre className="json" style={{ marginTop: hasDiff ? "0.5rem" : 0 }}>
          {pretty(rest)}
        </pre>
      ) : null}
    </details>
  );
}

async function ConnectionsTab({ actor, params }: { actor: Actor; params: Params }) {
  const filters = queryRecord(params, ["nodeId", "userId", "range"]);
  const cursor = firstParam(params.cursor) || undefined;
  const since = sinceOf(filters.range);
  const ctx = getRuntime();
  const [page, machines, users] = await Promise.all([
    listConnections(ctx, actor, {
      ...(filters.nodeId ? { nodeId: filters.nodeId } : {}),
      ...(filters.userId ? { userId: filters.userId } : {}),
      ...(since ? { since } : {}),
      ...(cursor ? { cursor } : {}),
      limit: "50",
    }),
    actor.scopes.has("machines:read") ? listMachines(ctx, actor, { limit: "200" }) : null,
    actor.scopes.has("users:read") ? listUsers(ctx, actor, { limit: "200" }) : null,
  ]);
  const filtered = Boolean(filters.nodeId || filters.userId || filters.range);
  return (
    <>
      <FilterBar action="/logs" clearHref="/logs?tab=connections" filtered={filtered}>
        <input type="hidden" name="tab" value="connections" />
        {machines ? (
          <SelectFilter
            id="conn-node"
            name="nodeId"
            label="Machine"
            value={filters.nodeId}
            options={[
              { value: "", label: "All machines" },
              ...machines.items.map((m) => ({ value: m.id, label: m.name })),
            ]}
          />
        ) : null}
        {users ? (
          <SelectFilter
            id="conn-user"
            name="userId"
            label="User"
            value={filters.userId}
            options={[
              { value: "", label: "All users" },
              ...users.items.map((u) => ({ value: u.id, label: u.email })),
            ]}
          />
        ) : null}
        <RangeSelect id="conn-range" value={filters.range} />
      </FilterBar>
      <DataTable
        rows={page.items}
        rowKey={(c) => c.id}
        rowTestId={() => "connection-row"}
        empty={
          <Empty title={filtered ? "No connections match" : "No connections reported"}>
            <p>Machines that log connections report them here.</p>
          </Empty>
        }
        columns={[
          {
            header: "Reporter",
            cell: (c) => (
              <>
                <Link href={`/machines/${c.reporter.id}`}>{c.reporter.name}</Link>
                <span className="cell-sub">{c.direction === "in" ? "inbound" : "outbound"}</span>
              </>
            ),
          },
          {
            header: "Source → destination",
            cell: (c) => (
              <>
                <End node={c.srcNode} addr={c.src} /> <span aria-label="to">→</span>{" "}
                <End node={c.dstNode} addr={c.dst} />
              </>
            ),
          },
          { header: "Proto", cell: (c) => protoName(c.proto) },
          {
            header: "Sent / received",
            num: true,
            className: "nowrap",
            cell: (c) => `${formatBytes(c.txBytes)} / ${formatBytes(c.rxBytes)}`,
          },
          {
            header: "Start",
            className: "nowrap",
            cell: (c) => (
              <span title={formatDate(c.startedAt)}>
                <Time iso={c.startedAt} />
              </span>
            ),
          },
          {
            header: "End",
            className: "nowrap",
            cell: (c) =>
              c.endedAt ? <Time iso={c.endedAt} /> : <span className="badge badge-ok">open</span>,
          },
        ]}
      />
      <Pager
        path="/logs"
        params={{ ...filters, tab: "connections" }}
        cursor={cursor}
        page={page}
        noun="connection"
      />
    </>
  );
}

function End({ node, addr }: { node: ConnectionInfo["srcNode"]; addr: string }) {
  if (!node) return <span className="mono small">{addr}</span>;
  return (
    <span>
      <Link href={`/machines/${node.id}`} className="cell-title">
        {node.name}
      </Link>{" "}
      <span className="mono small muted">{addr}</span>
      {node.user ? <span className="cell-sub">{node.user}</span> : null}
    </span>
  );
}
