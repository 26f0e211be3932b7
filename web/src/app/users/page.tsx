import type { Metadata } from "next";
import Link from "next/link";
import { listUsers } from "@trellis/control/admin";
import { listInvitations } from "@trellis/control/auth";
import type { InvitationInfo } from "@trellis/proto";
import { ActionButton } from "@/components/action-button";
import { DataTable, Empty } from "@/components/data-table";
import { FilterBar, SelectFilter, TextFilter } from "@/components/filter-bar";
import { firstParam, formatDate, plural, queryRecord } from "@/components/format";
import { Pager } from "@/components/pager";
import { Time } from "@/components/time";
import { getRuntime } from "@/lib/api";
import { requirePageActor } from "@/lib/session";
import { InviteForm } from "./invite-form";
import { RoleSelect } from "./role-select";

export const dynamic = "force-dynamic";
export const metadata: Metadata = { title: "Users" };

type SearchParams = Promise<Record<string, string | string[] | undefined>>;

const ROLE_OPTIONS = [
  { value: "", label: "All roles" },
  { value: "admin", label: "Admins" },
  { value: "member", label: "Members" },
  { value: "auditor", label: "Auditors" },
];

function invitationState(inv: InvitationInfo): "accepted" | "expired" | "pending" {
  if (inv.acceptedAt) return "accepted";
  return Date.parse(inv.expiresAt) <= Date.now() ? "expired" : "pending";
}

export default async function UsersPage({ searchParams }: { searchParams: SearchParams }) {
  const actor = await requirePageActor("users:read", "/users");
  const params = await searchParams;
  const filters = queryRecord(params, ["q", "role"]);
  const cursor = firstParam(params.cursor) || undefined;
  const ctx = getRuntime();
  const canWrite = actor.scopes.has("users:write");
  const [page, invitations] = await Promise.all([
    listUsers(ctx, actor, { ...filters, ...(cursor ? { cursor } : {}), limit: "50" }),
    listInvitations(ctx, actor),
  ]);
  const openInvitations = invitations.filter((i) => invitationState(i) !== "accepted");

  return (
    <>
      <div className="page-head">
        <div>
          <h1>Users</h1>
          <p className="lead">People who can log in to this tailnet, and their roles.</p>
        </div>
      </div>

      <FilterBar action="/users" clearHref="/users" filtered={Boolean(filters.q || filters.role)}>
        <TextFilter
          id="user-q"
          name="q"
          label="Search users"
          value={filters.q}
          placeholder="Search by name or email"
          search
        />
        <SelectFilter id="user-role" name="role" label="Role" value={filters.role} options={ROLE_OPTIONS} />
      </FilterBar>

      <DataTable
        rows={page.items}
        rowKey={(u) => u.id}
        rowTestId={(u) => `user-row-${u.email}`}
        empty={
          <Empty title="No users match">
            <p>Try another search.</p>
          </Empty>
        }
        columns={[
          {
            header: "User",
            cell: (u) => (
              <>
                <span className="cell-title">{u.name || u.email}</span>
                {u.id === actor.userId ? <span className="badge">you</span> : null}
                <span className="cell-sub">{u.email}</span>
                {u.loginThrottle ? (
                  <span className="cell-sub" data-testid={`user-throttled-${u.email}`}>
                    <span
                      className="badge badge-warn"
                      title={
                        u.loginThrottle.accountWide
                          ? "Failed passwords from many addresses: every address is slowed down"
                          : `Failed passwords from ${u.loginThrottle.addresses.join(", ")}`
                      }
                    >
                      sign-in throttled until {formatDate(u.loginThrottle.until)}
                    </span>{" "}
                    {canWrite ? (
                      <ActionButton
                        label="Clear"
                        method="DELETE"
                        url={`/api/v1/users/${encodeURIComponent(u.id)}/login-throttle`}
                        answer="nothing"
                        variant="ghost"
                        ariaLabel={`Clear the sign-in throttle of ${u.email}`}
                        testId={`clear-throttle-${u.email}`}
                      />
                    ) : null}
                  </span>
                ) : null}
              </>
            ),
          },
          {
            header: "Role",
            cell: (u) =>
              canWrite && u.id !== actor.userId ? (
                <RoleSelect userId={u.id} email={u.email} role={u.role} />
              ) : (
                <span className={`badge badge-role-${u.role}`}>{u.role}</span>
              ),
          },
          { header: "Login", cell: (u) => (u.login === "oidc" ? "OIDC" : "Password") },
          {
            header: "Machines",
            num: true,
            cell: (u) =>
              u.machines > 0 ? (
                <Link href={`/machines?q=${encodeURIComponent(u.email)}`}>{u.machines}</Link>
              ) : (
                0
              ),
          },
          { header: "Last login", cell: (u) => <Time iso={u.lastLoginAt} /> },
          canWrite && {
            header: "Actions",
            hideHeader: true,
            className: "nowrap",
            cell: (u) =>
              u.id === actor.userId ? null : (
                <ActionButton
                  label="Remove"
                  method="DELETE"
                  url={`/api/v1/users/${encodeURIComponent(u.id)}`}
                  answer="nothing"
                  variant="ghost"
                  ariaLabel={`Remove ${u.email}`}
                  testId={`remove-user-${u.email}`}
                  confirm={{
                    title: `Remove ${u.email}?`,
                    message:
                      u.machines > 0
                        ? `This also removes ${plural(u.machines, "machine")} they own from the tailnet. It cannot be undone.`
                        : "They can no longer log in. It cannot be undone.",
                    confirmLabel: "Remove user",
                  }}
                />
              ),
          },
        ]}
      />
      <Pager path="/users" params={filters} cursor={cursor} page={page} noun="user" />

      <section className="section" aria-labelledby="inv-title">
        <h2 id="inv-title">Invitations</h2>
        {canWrite ? <InviteForm /> : null}
        <DataTable
          rows={openInvitations}
          rowKey={(inv) => inv.id}
          rowTestId={(inv) => `invitation-row-${inv.email}`}
          empty={<p className="muted small">No open invitations.</p>}
          style={{ marginTop: "1rem" }}
          columns={[
            { header: "Email", cell: (inv) => inv.email },
            {
              header: "Role",
              cell: (inv) => <span className={`badge badge-role-${inv.role}`}>{inv.role}</span>,
            },
            { header: "Invited", cell: (inv) => <Time iso={inv.createdAt} /> },
            {
              header: "Expires",
              cell: (inv) =>
                invitationState(inv) === "expired" ? (
                  <span className="badge badge-bad">expired</span>
                ) : (
                  <Time iso={inv.expiresAt} />
                ),
            },
            canWrite && {
              header: "Actions",
              hideHeader: true,
              cell: (inv) => (
                <ActionButton
                  label="Revoke"
                  method="DELETE"
                  url={`/api/v1/invitations/${encodeURIComponent(inv.id)}`}
                  answer="nothing"
                  variant="ghost"
                  ariaLabel={`Revoke the invitation for ${inv.email}`}
                  confirm={{
                    title: `Revoke the invitation for ${inv.email}?`,
                    message: "The invite link stops working.",
                    confirmLabel: "Revoke",
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
