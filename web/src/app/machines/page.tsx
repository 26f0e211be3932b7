import type { Metadata } from "next";
import Link from "next/link";
import { AppLinks } from "@/apps/app-links";
import { RouteHost } from "@/apps/route-host";
import { listMachines, tagChoices } from "@trellis/control/admin";
import type { MachineInfo } from "@trellis/proto";
import { ActionButton } from "@/components/action-button";
import { Copyable } from "@/components/copy-button";
import { DataTable, Empty } from "@/components/data-table";
import { FilterBar, SelectFilter, TextFilter } from "@/components/filter-bar";
import { firstParam, queryRecord } from "@/components/format";
import { KeyExpiry, MachineStatus, Owner, PathSummary, RoutesSummary } from "@/components/machine-bits";
import { Pager } from "@/components/pager";
import { Time } from "@/components/time";
import { getRuntime } from "@/lib/api";
import { requirePageActor } from "@/lib/session";
import { WireGuardPeerForm, type GatewayChoice } from "./wireguard-form";

export const dynamic = "force-dynamic";
export const metadata: Metadata = { title: "Machines" };

type SearchParams = Promise<Record<string, string | string[] | undefined>>;

const STATUSES = ["online", "offline", "pending", "expired"] as const;
const STATUS_OPTIONS = [
  { value: "", label: "All machines" },
  { value: "online", label: "Online" },
  { value: "offline", label: "Offline" },
  { value: "pending", label: "Pending approval" },
  { value: "expired", label: "Key expired" },
];

export default async function MachinesPage({ searchParams }: { searchParams: SearchParams }) {
  const actor = await requirePageActor("machines:read", "/machines");
  const params = await searchParams;
  const filters = queryRecord(params, ["q", "status"]);
  if (filters.status && !(STATUSES as readonly string[]).includes(filters.status)) delete filters.status;
  const cursor = firstParam(params.cursor) || undefined;
  const ctx = getRuntime();
  const isAdmin = actor.role === "admin" && actor.scopes.has("machines:write");

  const [page, pending] = await Promise.all([
    listMachines(ctx, actor, { ...filters, ...(cursor ? { cursor } : {}), limit: "50" }),
    filters.status === "pending" || cursor
      ? Promise.resolve(null)
      : listMachines(ctx, actor, { status: "pending", limit: "50" }),
  ]);
  const filtered = Boolean(filters.q || filters.status);
  // Gateways a plain WireGuard peer can go through: active machines that publish a UDP endpoint.
  let gateways: GatewayChoice[] = [];
  let wgTags: string[] = [];
  if (isAdmin) {
    const all = await listMachines(ctx, actor, { limit: "200" });
    gateways = all.items
      .filter((m) => !m.wireguard && m.authorized && !m.expired && m.endpoints.length > 0)
      .map((m) => ({ id: m.id, name: m.name, endpoints: m.endpoints, exitNode: m.exitNodeApproved }));
    wgTags = await tagChoices(ctx, actor);
  }

  return (
    <>
      <div className="page-head">
        <div>
          <h1>Machines</h1>
          <p className="lead">
            {actor.role === "member" ? "Your devices in the tailnet." : "Every device in the tailnet."}
          </p>
        </div>
        {actor.scopes.has("keys:write") ? (
          <Link className="btn btn-primary" href="/keys">
            Add a machine
          </Link>
        ) : null}
      </div>

      {isAdmin ? <WireGuardPeerForm gateways={gateways} tagChoices={wgTags} /> : null}

      {pending && pending.items.length > 0 ? (
        <section
          className="panel section-pending"
          aria-labelledby="pending-title"
          data-testid="pending-machines"
        >
          <h2 id="pending-title" className="section-title">
            Pending approval <span className="badge badge-warn">{pending.total}</span>
          </h2>
          <p className="muted small">
            These machines registered but cannot reach anyone until an admin approves them.
          </p>
          <ul className="list-rows pending-list">
            {pending.items.map((m) => (
              <li key={m.id} className="row" data-testid={`pending-row-${m.name}`}>
                <Link className="cell-title" href={`/machines/${m.id}`}>
                  {m.name}
                </Link>
                <span className="muted small">
                  {m.os || "unknown OS"} · <Owner m={m} /> · registered <Time iso={m.createdAt} />
                </span>
                <span className="spacer" />
                {isAdmin ? (
                  <ActionButton
                    label="Approve"
                    method="POST"
                    url={`/api/v1/machines/${encodeURIComponent(m.id)}/authorize`}
                    answer="machine"
                    variant="primary"
                    testId={`approve-${m.name}`}
                    ariaLabel={`Approve ${m.name}`}
                  />
                ) : null}
              </li>
            ))}
          </ul>
        </section>
      ) : null}

      <FilterBar action="/machines" clearHref="/machines" filtered={filtered}>
        <TextFilter
          id="machine-q"
          name="q"
          label="Search machines"
          value={filters.q}
          placeholder="Search by name, address, owner or tag"
          search
        />
        <SelectFilter
          id="machine-status"
          name="status"
          label="Status"
          value={filters.status}
          options={STATUS_OPTIONS}
        />
      </FilterBar>

      {page.items.length === 0 ? (
        filtered ? (
          <Empty title="No machines match" testId="machines-empty">
            <p>Try another search or status.</p>
            <Link href="/machines" className="btn btn-secondary">
              Show all machines
            </Link>
          </Empty>
        ) : (
          <EmptyMachines
            canKeys={actor.scopes.has("keys:write")}
            canConnect={actor.scopes.has("machines:write")}
            publicUrl={ctx.config.publicUrl}
          />
        )
      ) : (
        <>
          <MachineTable machines={page.items} />
          <Pager path="/machines" params={filters} cursor={cursor} page={page} noun="machine" />
        </>
      )}
    </>
  );
}

function EmptyMachines({
  canKeys,
  canConnect,
  publicUrl,
}: {
  canKeys: boolean;
  canConnect: boolean;
  publicUrl: string;
}) {
  return (
    <Empty title="No machines yet" testId="machines-empty">
      <p>Add a machine with a pre-auth key: generate one on the Keys page, then run this on the machine:</p>
      <pre className="json">{`trellis up --login-server ${publicUrl} --auth-key <key>`}</pre>
      <div>
        {canKeys ? (
          <Link href="/keys" className="btn btn-primary">
            Generate a key
          </Link>
        ) : (
          <p>Ask an admin for a pre-auth key.</p>
        )}
      </div>
      {canConnect ? (
        <p>
          Or join from this browser: <Link href="/connect">connect this tab</Link>.
        </p>
      ) : null}
    </Empty>
  );
}

function MachineTable({ machines }: { machines: MachineInfo[] }) {
  return (
    <DataTable
      rows={machines}
      rowKey={(m) => m.id}
      rowTestId={(m) => `machine-row-${m.name}`}
      columns={[
        {
          header: "Machine",
          cell: (m) => (
            <>
              <Link className="cell-title" href={`/machines/${m.id}`}>
                {m.name}
              </Link>
              <span className="cell-sub">{m.dnsName}</span>
              {m.ephemeral ? <span className="badge">ephemeral</span> : null}
            </>
          ),
        },
        { header: "Owner", cell: (m) => <Owner m={m} /> },
        {
          header: "Addresses",
          cell: (m) => (
            <>
              {m.ipv4 ? <Copyable value={m.ipv4} what={`IPv4 address of ${m.name}`} /> : null}
              {m.ipv6 ? (
                <span className="cell-sub">
                  <Copyable value={m.ipv6} what={`IPv6 address of ${m.name}`} />
                </span>
              ) : null}
            </>
          ),
        },
        { header: "OS", cell: (m) => m.os || <span className="muted">—</span> },
        { header: "Status", cell: (m) => <MachineStatus m={m} /> },
        { header: "Path", cell: (m) => <PathSummary m={m} /> },
        { header: "Key expiry", cell: (m) => <KeyExpiry m={m} /> },
        { header: "Routes", cell: (m) => <RoutesSummary m={m} /> },
        {
          header: "Open",
          hideHeader: true,
          cell: (m) =>
            m.online && m.os !== "browser" ? (
              <>
                <AppLinks machine={m.name} ping />
                <RouteHost machine={m.name} routes={m.approvedRoutes} />
              </>
            ) : null,
        },
      ]}
    />
  );
}
