import type { Metadata } from "next";
import { redirect } from "next/navigation";
import { getRuntime } from "@/lib/api";
import { loginErrorMessage, safeNext } from "@/lib/login-params";
import { getPageActor } from "@/lib/session";
import { LoginForm } from "./login-form";

export const metadata: Metadata = { title: "Log in" };
export const dynamic = "force-dynamic";

export default async function LoginPage({
  searchParams,
}: {
  searchParams: Promise<{ next?: string; error?: string }>;
}) {
  const { next, error } = await searchParams;
  // Both come from a URL anyone can send: only a path of this origin, only a known error code.
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
      <LoginForm next={target} oidcName={oidc ? oidc.name : null} initialError={loginErrorMessage(error)} />
    </section>
  );
}
