import type { Metadata } from "next";
import { requirePageActor } from "@/lib/session";
import { ConnectPanel } from "./connect-panel";

export const dynamic = "force-dynamic";
export const metadata: Metadata = { title: "Connect" };

export default async function ConnectPage() {
  const actor = await requirePageActor("machines:write", "/connect");
  return (
    <>
      <div className="page-head">
        <div>
          <h1>Connect</h1>
          <p className="lead">
            Make this browser a machine of the tailnet, reachable and reaching others over WireGuard. Its key
            is created here and never leaves this browser.
          </p>
        </div>
      </div>
      <ConnectPanel email={actor.email} />
    </>
  );
}
