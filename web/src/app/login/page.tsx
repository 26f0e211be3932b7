import type { Metadata } from "next";
import { redirect } from "next/navigation";
import { getRuntime } from "@/lib/api";
import { getPageActor } from "@/lib/session";
import { LoginForm } from "./login-form";

export const metadata: Metadata = { title: "Log in" };
export const dynamic = "force-dynamic";

/** Only same-site paths are followed after login (no open redirect). */
function safeNext(next: string | undefined): string {
  return next && next.startsWith("/") && !next.startsWith("//") ? next : "/machines";
}

export default async function LoginPage({
  searchParams,
}: {
  searchParams: Promise<{ next?: string; error?: string }>;
}) {
  const { next, error } = await searchParams;
  const target = safeNext(next);
  if (await getPageActor()) redirect(target);
  const rt = getRuntime();
  const oidc = rt.config.oidc;
  const setupComplete = await rt.isSetupComplete();
  return (
    <section className="auth-card card">
      <h1>Log in to Trellis</h1>
      {setupComplete ? null : (
        <p className="callout" data-testid="setup-hint">
          No admin account exists yet: open the setup link the server printed when it started.
        </p>
      )}
      <LoginForm next={target} oidcName={oidc ? oidc.name : null} initialError={error ?? null} />
    </section>
  );
}
