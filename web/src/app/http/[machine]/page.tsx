import type { Metadata } from "next";
import { requirePageActor } from "@/lib/session";
import { RequestPanel } from "./request-panel";

export const dynamic = "force-dynamic";

export async function generateMetadata({
  params,
}: {
  params: Promise<{ machine: string }>;
}): Promise<Metadata> {
  return { title: `HTTP ${decodeURIComponent((await params).machine)}` };
}

/** `/http/<machine>?port=80&path=/`: HTTP requests to a tailnet machine, sent from this browser's node. */
export default async function HttpPage({
  params,
  searchParams,
}: {
  params: Promise<{ machine: string }>;
  searchParams: Promise<{ port?: string | string[]; path?: string | string[] }>;
}) {
  const machine = decodeURIComponent((await params).machine);
  const q = await searchParams;
  const port = typeof q.port === "string" && /^\d{1,5}$/.test(q.port) ? Number(q.port) : 80;
  const path = typeof q.path === "string" && q.path.startsWith("/") ? q.path : "/";
  await requirePageActor("machines:write", `/http/${encodeURIComponent(machine)}`);
  return (
    <>
      <div className="page-head">
        <div>
          <h1>
            HTTP <span className="mono">{machine}</span>
          </h1>
          <p className="lead">
            Requests to {machine}&apos;s web services and APIs, sent from this browser over WireGuard. Plain
            HTTP inside the tunnel: the tunnel is the encryption.
          </p>
        </div>
      </div>
      <RequestPanel machine={machine} initialPort={port} initialPath={path} />
    </>
  );
}
