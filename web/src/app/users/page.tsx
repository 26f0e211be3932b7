import type { Metadata } from "next";
import Form from "next/form";
import Link from "next/link";
import { listUsers } from "@trellis/control/admin";
import { listInvitations } from "@trellis/control/auth";
import type { InvitationInfo } from "@trellis/proto";
import { ActionButton } from "@/components/action-button";
import { firstParam, plural, queryRecord } from "@/components/format";
import { Pager } from "@/components/pager";
import { Time } from "@/components/time";
import { getRuntime } from "@/lib/api";
import { requirePageActor } from "@/lib/session";
import { InviteForm } from "./invite-form";
import { RoleSelect } from "./role-select";

export const dynamic = "force-dynamic";
export const metadata: Metadata = { title: "Users" };

type SearchParams = Promise<Record<string, string | string[] | undefined>>;

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
    listInvitations(ctx.db, actor),
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

      <Form action="/users" className="toolbar" role="search">
        <label className="visually-hidden" htmlFor="user-q">
          Search users
        </label>
        <input
          id="user-q"
          type="search"
          name="q"
          defaultValue={filters.q ?? ""}
          placeholder="Search by name or email"
        />
        <label className="visually-hidden" htmlFor="user-role">
          Role
        </label>
        <select id="user-role" name="role" defaultValue={filters.role ?? ""}>
          <option value="">All roles</option>
          <option value="admin">Admins</option>
          <option value="member">Members</option>
          <option value="auditor">Auditors</option>
        </select>
        <button type="submit" className="btn btn-secondary">
          Filter
        </button>
        {filters.q || filters.role ? (
          <Link href="/users" className="btn btn-ghost">
            Clear
          </Link>
        ) : null}
      </Form>

      {page.items.length === 0 ? (
        <div className="empty">
          <h2>No users match</h2>
          <p>Try another search.</p>
        </div>
      ) : (
        <div className="table-wrap">
          <table className="data">
            <thead>
              <tr>
                <th scope="col">User</th>
                <th scope="col">Role</th>
                <th scope="col">Login</th>
                <th scope="col" className="num">
                  Machines
                </th>
                <th scope="col">Last login</th>
                {canWrite ? (
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                ) : null}
              </tr>
            </thead>
            <tbody>
              {page.items.map((u) => {
                const self = u.id === actor.userId;
                return (
                  <tr key={u.id} data-testid={`user-row-${u.email}`}>
                    <td>
                      <span className="cell-title">{u.name || u.email}</span>
                      {self ? <span className="badge">you</span> : null}
                      <span className="cell-sub">{u.email}</span>
                    </td>
                    <td>
                      {canWrite && !self ? (
                        <RoleSelect userId={u.id} email={u.email} role={u.role} />
                      ) : (
                        <span className={`badge badge-role-${u.role}`}>{u.role}</span>
                      )}
                    </td>
                    <td>{u.login === "oidc" ? "OIDC" : "Password"}</td>
                    <td className="num">
                      {u.machines > 0 ? (
                        <Link href={`/machines?q=${encodeURIComponent(u.email)}`}>{u.machines}</Link>
                      ) : (
                        0
                      )}
                    </td>
                    <td>
                      <Time iso={u.lastLoginAt} />
                    </td>
                    {canWrite ? (
                      <td className="nowrap">
                        {self ? null : (
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
      <Pager
        path="/users"
        params={filters}
        cursor={cursor}
        nextCursor={page.nextCursor}
        shown={page.items.length}
        total={page.total}
        noun="user"
      />

      <section className="section" aria-labelledby="inv-title">
        <h2 id="inv-title">Invitations</h2>
        {canWrite ? <InviteForm /> : null}
        {openInvitations.length === 0 ? (
          <p className="muted small">No open invitations.</p>
        ) : (
          <div className="table-wrap" style={{ marginTop: "1rem" }}>
            <table className="data">
              <thead>
                <tr>
                  <th scope="col">Email</th>
                  <th scope="col">Role</th>
                  <th scope="col">Invited</th>
                  <th scope="col">Expires</th>
                  {canWrite ? (
                    <th scope="col">
                      <span className="visually-hidden">Actions</span>
                    </th>
                  ) : null}
                </tr>
              </thead>
              <tbody>
                {openInvitations.map((inv) => (
                  <tr key={inv.id} data-testid={`invitation-row-${inv.email}`}>
                    <td>{inv.email}</td>
                    <td>
                      <span className={`badge badge-role-${inv.role}`}>{inv.role}</span>
                    </td>
                    <td>
                      <Time iso={inv.createdAt} />
                    </td>
                    <td>
                      {invitationState(inv) === "expired" ? (
                        <span className="badge badge-bad">expired</span>
                      ) : (
                        <Time iso={inv.expiresAt} />
                      )}
                    </td>
                    {canWrite ? (
                      <td>
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
                      </td>
                    ) : null}
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
