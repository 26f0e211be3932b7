import type { Metadata } from "next";
import Link from "next/link";
import { Scope } from "@trellis/proto";
import { firstParam } from "@/components/format";
import { getPageActor } from "@/lib/session";

export const dynamic = "force-dynamic";
export const metadata: Metadata = { title: "Not allowed" };

const WHAT: Record<Scope, string> = {
  "machines:read": "view machines",
  "machines:write": "change machines",
  "users:read": "view users",
  "users:write": "manage users and invitations",
  "keys:read": "view pre-auth keys",
  "keys:write": "generate and revoke pre-auth keys",
  "policy:read": "view the access policy",
  "policy:write": "edit the access policy",
  "dns:read": "view DNS settings",
  "dns:write": "change DNS settings",
  "settings:read": "view tailnet settings",
  "settings:write": "change tailnet settings",
  "logs:read": "view audit and connection logs",
};

export default async function ForbiddenPage({
  searchParams,
}: {
  searchParams: Promise<Record<string, string | string[] | undefined>>;
}) {
  const params = await searchParams;
  const parsed = Scope.safeParse(firstParam(params.need));
  const need = parsed.success ? parsed.data : null;
  const actor = await getPageActor();
  return (
    <div className="panel" style={{ maxWidth: "40rem" }} data-testid="forbidden">
      <h1>You don’t have access to this page</h1>
      {need ? (
        <p>
          It needs the <code data-testid="forbidden-scope">{need}</code> permission (to {WHAT[need]}).
          {actor ? (
            <>
              {" "}
              Your role, <strong>{actor.role}</strong>, does not include it.
            </>
          ) : null}
        </p>
      ) : (
        <p>Your account lacks a permission this page needs.</p>
      )}
      <p className="muted">Ask an admin of this tailnet to change your role if you need it.</p>
      <p className="row">
        {actor ? (
          <Link className="btn btn-primary" href="/machines">
            Go to your machines
          </Link>
        ) : (
          <Link className="btn btn-primary" href="/login">
            Log in
          </Link>
        )}
      </p>
    </div>
  );
}
