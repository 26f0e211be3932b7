import type { Metadata } from "next";
import Link from "next/link";
import { getPolicy } from "@trellis/control/admin";
import { getRuntime } from "@/lib/api";
import { requirePageActor } from "@/lib/session";
import { PolicyEditor } from "./policy-editor";
import { ReachabilityChecker } from "./reachability";

export const dynamic = "force-dynamic";
export const metadata: Metadata = { title: "Access controls" };

export default async function AclsPage() {
  const actor = await requirePageActor("policy:read", "/acls");
  const policy = await getPolicy(getRuntime(), actor);
  const canWrite = actor.scopes.has("policy:write");
  return (
    <>
      <div className="page-head">
        <div>
          <h1>Access controls</h1>
          <p className="lead">
            The tailnet policy file (HuJSON: JSON with comments and trailing commas). Everything not allowed
            here is denied.
          </p>
        </div>
      </div>
      <nav className="tabs" aria-label="Access controls">
        <Link href="/acls" aria-current="page">
          Policy file
        </Link>
        <Link href="/acls/history">History</Link>
      </nav>
      <PolicyEditor text={policy.text} version={policy.version} readOnly={!canWrite} />
      <section className="section" aria-label="Reachability">
        <ReachabilityChecker />
      </section>
    </>
  );
}
