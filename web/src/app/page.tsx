import { redirect } from "next/navigation";
import type { HealthResponse } from "@trellis/proto";
import { getRuntime } from "@/lib/api";
import { getPageActor } from "@/lib/session";

export const dynamic = "force-dynamic";

function Status({ ok, label }: { ok: boolean; label: string }) {
  return <span className={`status ${ok ? "ok" : "bad"}`}>{label}</span>;
}

export default async function Home() {
  // Logged in: the console's first page. Everyone else sees the service status.
  if (await getPageActor()) redirect("/machines");
  const rt = getRuntime();
  const [health, setupComplete]: [HealthResponse, boolean] = await Promise.all([
    rt.health(),
    rt.isSetupComplete(),
  ]);
  return (
    <>
      <h1>Your tailnet</h1>
      <p className="lead">Trellis joins browsers, servers and whole subnets into one WireGuard network.</p>
      {setupComplete ? (
        <p className="home-login">
          <a className="button" href="/login" data-testid="login-link">
            Log in
          </a>
        </p>
      ) : null}
      <section className="grid" aria-label="Service status">
        <div className="card" data-testid="status-server">
          <h2>Server</h2>
          <Status ok={health.status === "ok"} label={health.status === "ok" ? "Healthy" : "Degraded"} />
          <p className="detail">
            Version {health.version} · up {health.uptime_s}s
          </p>
        </div>
        <div className="card" data-testid="status-database">
          <h2>Database</h2>
          <Status
            ok={health.database.status === "ok"}
            label={health.database.provider === "sqlite" ? "SQLite" : "PostgreSQL"}
          />
          <p className="detail">
            {health.database.status === "ok"
              ? `responding in ${health.database.latency_ms ?? 0} ms`
              : health.database.error}
          </p>
        </div>
        <div className="card" data-testid="status-relay">
          <h2>Relay</h2>
          <Status
            ok={health.relay.status !== "stopped"}
            label={
              health.relay.status === "listening"
                ? "Listening"
                : health.relay.status === "external"
                  ? "External"
                  : "Stopped"
            }
          />
          <p className="detail">
            <code>{health.relay.path}</code> · {health.relay.clients} connected
          </p>
        </div>
      </section>
      {setupComplete ? null : (
        <section className="card callout" data-testid="setup-callout">
          <h2>First run</h2>
          <p>
            No admin account exists yet. Open the setup link that the server printed when it started; it
            carries a one-time token that lets you create the first admin.
          </p>
        </section>
      )}
    </>
  );
}
