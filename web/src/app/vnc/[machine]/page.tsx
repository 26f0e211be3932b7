import type { Metadata } from "next";
import { requirePageActor } from "@/lib/session";
import { VncApp } from "./vnc-app";

export const dynamic = "force-dynamic";

export async function generateMetadata({
  params,
}: {
  params: Promise<{ machine: string }>;
}): Promise<Metadata> {
  return { title: `VNC ${decodeURIComponent((await params).machine)}` };
}

/** `/vnc/<machine>?port=5900`: a VNC viewer whose connection runs through this browser's node. */
export default async function VncPage({
  params,
  searchParams,
}: {
  params: Promise<{ machine: string }>;
  searchParams: Promise<{ port?: string | string[] }>;
}) {
  const machine = decodeURIComponent((await params).machine);
  const raw = (await searchParams).port;
  const port = typeof raw === "string" && /^59\d\d$/.test(raw) ? Number(raw) : 5900;
  await requirePageActor("machines:write", `/vnc/${encodeURIComponent(machine)}`);
  return (
    <>
      <div className="page-head">
        <div>
          <h1>
            VNC <span className="mono">{machine}</span>
            {port !== 5900 ? <span className="mono">:{port}</span> : null}
          </h1>
          <p className="lead">
            The screen of {machine}, over WireGuard from this browser. VNC itself is not encrypted; the tunnel
            is, end to end.
          </p>
        </div>
      </div>
      <VncApp machine={machine} port={port} />
    </>
  );
}
