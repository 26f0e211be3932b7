import type { Metadata } from "next";
import { getRuntime } from "@/lib/api";
import { SetupForm } from "./setup-form";

export const dynamic = "force-dynamic";
export const metadata: Metadata = { title: "First-run setup" };

export default async function SetupPage() {
  const complete = await getRuntime().isSetupComplete();
  return (
    <>
      <h1>Create the first admin</h1>
      {complete ? (
        <p className="lead" data-testid="setup-done">
          Setup is complete: an admin account exists.
        </p>
      ) : (
        <>
          <p className="lead">
            This account administers the tailnet: machines, users, keys and the access policy.
          </p>
          <div className="card">
            <SetupForm />
          </div>
        </>
      )}
    </>
  );
}
