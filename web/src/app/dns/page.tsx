import type { Metadata } from "next";
import { getDnsSettings } from "@trellis/control/settings";
import { getRuntime } from "@/lib/api";
import { requirePageActor } from "@/lib/session";
import { DnsForm } from "./dns-form";

export const dynamic = "force-dynamic";
export const metadata: Metadata = { title: "DNS" };

export default async function DnsPage() {
  const actor = await requirePageActor("dns:read", "/dns");
  const dns = await getDnsSettings(getRuntime(), actor);
  return (
    <>
      <div className="page-head">
        <div>
          <h1>DNS</h1>
          <p className="lead">How machines in the tailnet resolve names.</p>
        </div>
      </div>
      <DnsForm initial={dns} readOnly={!actor.scopes.has("dns:write")} />
    </>
  );
}
