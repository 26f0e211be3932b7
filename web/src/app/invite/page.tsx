import type { Metadata } from "next";
import { InviteForm } from "./invite-form";

export const metadata: Metadata = { title: "Accept invitation" };

export default function InvitePage() {
  return (
    <section className="auth-card card">
      <h1>Join this tailnet</h1>
      <p className="lead">Choose your name and a password to create your account.</p>
      <InviteForm />
    </section>
  );
}
