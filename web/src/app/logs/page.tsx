import type { Metadata } from "next";
import Form from "next/form";
import Link from "next/link";
import { listAudit, listConnections, listMachines, listUsers } from "@trellis/control/admin";
import type { AuditEventInfo, ConnectionInfo } from "@trellis/proto";
import { DiffView } from "@/components/diff-view";
import { firstParam, formatBytes, formatDate, protoName, queryRecord } from "@/components/format";
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

function RangeSelect({ id, value }: { id: string; value: string | undefined }) {
  return (
    <>
      <label className="visually-hidden" htmlFor={id}>
        Time range
      </label>
      <select id={id} name="range" defaultValue={value ?? ""}>
        <option value="">All time</option>
        {RANGES.map((r) => (
          <option key={r.value} value={r.value}>
            {r.label}
          </option>
        ))}
      </select>
    </>
  );
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
    ...(filters.action ? { action: filters.action } : {}),
    ...(filters.actor ? { actor: filters.actor } : {}),
    ...(since ? { since } : {}),
    ...(cursor ? { cursor } : {}),
    limit: "50",
  });
  const filtered = Boolean(filters.action || filters.actor || filters.range);
  return (
    <>
      <Form action="/logs" className="toolbar" role="search">
        <label className="visually-hidden" htmlFor="audit-action">
          Action
        </label>
        <input
          id="audit-action"
          name="action"
          defaultValue={filters.action ?? ""}
          placeholder="Action, e.g. machine.update"
        />
        <label className="visually-hidden" htmlFor="audit-actor">
          Actor
        </label>
        <input id="audit-actor" name="actor" defaultValue={filters.actor ?? ""} placeholder="Actor email" />
        <RangeSelect id="audit-range" value={filters.range} />
        <button type="submit" className="btn btn-secondary">
          Filter
        </button>
        {filtered ? (
          <Link href="/logs" className="btn btn-ghost">
            Clear
          </Link>
        ) : null}
      </Form>
      {page.items.length === 0 ? (
        <div className="empty">
          <h2>{filtered ? "No events match" : "No events yet"}</h2>
          <p>Changes to machines, users, keys, the policy and settings are recorded here.</p>
        </div>
      ) : (
        <div className="table-wrap">
          <table className="data">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Who</th>
                <th scope="col">Action</th>
                <th scope="col">Target</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {page.items.map((e) => (
                <tr key={e.id} data-testid="audit-row">
                  <td className="nowrap">
                    <Time iso={e.at} />
                    <span className="cell-sub">{formatDate(e.at)}</span>
                  </td>
                  <td>{e.actorName}</td>
                  <td>
                    <code>{e.action}</code>
                  </td>
                  <td>
                    <span className="mono small">{e.target}</span>
                  </td>
                  <td style={{ minWidth: "16rem" }}>
                    <AuditDetail e={e} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Pager
        path="/logs"
        params={filters}
        cursor={cursor}
        nextCursor={page.nextCursor}
        shown={page.items.length}
        total={page.total}
        noun="event"
      />
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
        <DiffView from={pretty(before)} to={pretty(after)} label={`Changes made by ${e.action}`} />
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
      <Form action="/logs" className="toolbar" role="search">
        <input type="hidden" name="tab" value="connections" />
        {machines ? (
          <>
            <label className="visually-hidden" htmlFor="conn-node">
              Machine
            </label>
            <select id="conn-node" name="nodeId" defaultValue={filters.nodeId ?? ""}>
              <option value="">All machines</option>
              {machines.items.map((m) => (
                <option key={m.id} value={m.id}>
                  {m.name}
                </option>
              ))}
            </select>
          </>
        ) : null}
        {users ? (
          <>
            <label className="visually-hidden" htmlFor="conn-user">
              User
            </label>
            <select id="conn-user" name="userId" defaultValue={filters.userId ?? ""}>
              <option value="">All users</option>
              {users.items.map((u) => (
                <option key={u.id} value={u.id}>
                  {u.email}
                </option>
              ))}
            </select>
          </>
        ) : null}
        <RangeSelect id="conn-range" value={filters.range} />
        <button type="submit" className="btn btn-secondary">
          Filter
        </button>
        {filtered ? (
          <Link href="/logs?tab=connections" className="btn btn-ghost">
            Clear
          </Link>
        ) : null}
      </Form>
      {page.items.length === 0 ? (
        <div className="empty">
          <h2>{filtered ? "No connections match" : "No connections reported"}</h2>
          <p>Machines that log connections report them here.</p>
        </div>
      ) : (
        <div className="table-wrap">
          <table className="data">
            <thead>
              <tr>
                <th scope="col">Reporter</th>
                <th scope="col">Source → destination</th>
                <th scope="col">Proto</th>
                <th scope="col" className="num">
                  Sent / received
                </th>
                <th scope="col">Start</th>
                <th scope="col">End</th>
              </tr>
            </thead>
            <tbody>
              {page.items.map((c) => (
                <tr key={c.id} data-testid="connection-row">
                  <td>
                    <Link href={`/machines/${c.reporter.id}`}>{c.reporter.name}</Link>
                    <span className="cell-sub">{c.direction === "in" ? "inbound" : "outbound"}</span>
                  </td>
                  <td>
                    <End node={c.srcNode} addr={c.src} /> <span aria-label="to">→</span>{" "}
                    <End node={c.dstNode} addr={c.dst} />
                  </td>
                  <td>{protoName(c.proto)}</td>
                  <td className="num nowrap">
                    {formatBytes(c.txBytes)} / {formatBytes(c.rxBytes)}
                  </td>
                  <td className="nowrap">
                    <span title={formatDate(c.startedAt)}>
                      <Time iso={c.startedAt} />
                    </span>
                  </td>
                  <td className="nowrap">
                    {c.endedAt ? <Time iso={c.endedAt} /> : <span className="badge badge-ok">open</span>}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Pager
        path="/logs"
        params={{ ...filters, tab: "connections" }}
        cursor={cursor}
        nextCursor={page.nextCursor}
        shown={page.items.length}
        total={page.total}
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
