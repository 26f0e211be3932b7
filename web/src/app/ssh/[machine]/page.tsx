import type { Metadata } from "next";
import { requirePageActor } from "@/lib/session";
import { SshApp } from "./ssh-app";

export const dynamic = "force-dynamic";

export async function generateMetadata({
  params,
}: {
  params: Promise<{ machine: string }>;
}): Promise<Metadata> {
  return { title: `SSH ${decodeURIComponent((await params).machine)}` };
}

/** `/ssh/<machine>?user=…`: a terminal on a tailnet machine, SSH running in this page. */
export default async function SshPage({
  params,
  searchParams,
}: {
  params: Promise<{ machine: string }>;
  searchParams: Promise<{ user?: string | string[] }>;
}) {
  const machine = decodeURIComponent((await params).machine);
  const user = (await searchParams).user;
  const actor = await requirePageActor("machines:write", `/ssh/${encodeURIComponent(machine)}`);
  return (
    <>
      <div className="page-head">
        <div>
          <h1>
            SSH <span className="mono">{machine}</span>
          </h1>
          <p className="lead">
            End to end encrypted from this browser: SSH runs in this page, over WireGuard from this
            browser&apos;s own key. The Trellis server sees only encrypted packets.
          </p>
        </div>
      </div>
      <SshApp
        machine={machine}
        userId={actor.userId}
        email={actor.email}
        defaultUser={typeof user === "string" ? user : ""}
      />
    </>
  );
}
