import type { Metadata } from "next";
import { getRuntime } from "@/lib/api";
import { requirePageActor } from "@/lib/session";
import { parseTarget } from "@/apps/origin/protocol";
import { WebApp } from "./web-app";

export const dynamic = "force-dynamic";

function targetOf(segments: string[]): string {
  return "/" + segments.map((s) => decodeURIComponent(s)).join("/");
}

export async function generateMetadata({
  params,
}: {
  params: Promise<{ target: string[] }>;
}): Promise<Metadata> {
  const t = parseTarget(targetOf((await params).target));
  return { title: t ? `Web ${t.target.key}` : "Web" };
}

/** `/web/<machine>:<port>/<path>`: a tailnet web app, rendered on the apps origin inside this page. */
export default async function WebPage({
  params,
  searchParams,
}: {
  params: Promise<{ target: string[] }>;
  searchParams: Promise<Record<string, string | string[] | undefined>>;
}) {
  const raw = targetOf((await params).target);
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(await searchParams))
    for (const x of Array.isArray(v) ? v : v === undefined ? [] : [v]) query.append(k, x);
  await requirePageActor("machines:write", `/web${raw}`);
  const parsed = parseTarget(raw);
  const apps = getRuntime().config.apps;
  if (!parsed)
    return (
      <p className="error" role="alert">
        A web app address is /web/&lt;machine&gt;:&lt;port&gt;/&lt;path&gt;, e.g. /web/office:80/.
      </p>
    );
  if (!apps)
    return (
      <p className="error" role="alert">
        Web apps are turned off on this server (TRELLIS_APPS_PORT=off).
      </p>
    );
  const search = query.size ? `?${query}` : "";
  return (
    <WebApp
      machine={parsed.target.machine}
      port={parsed.target.port}
      appsUrl={apps.url}
      path={parsed.path + search}
    />
  );
}
