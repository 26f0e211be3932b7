import type { Metadata, Viewport } from "next";
import { unstable_rethrow } from "next/navigation";
import { cache, type ReactNode } from "react";
import type { Actor } from "@trellis/control/auth";
import type { Scope } from "@trellis/proto";
import { Brand } from "@/components/brand";
import { LiveRefresh } from "@/components/live-refresh";
import { SideNav, type NavItem } from "@/components/nav";
import { SignOutButton } from "@/components/sign-out-button";
import { ThemeSwitch } from "@/components/theme";
import { ThemeScript } from "@/components/theme-script";
import { tailnetName } from "@trellis/control/settings";
import { getRuntime } from "@/lib/api";
import { getPageActor } from "@/lib/session";
import { BrowserNodeBadge, BrowserNodeProvider } from "@/node/provider";
import "./globals.css";

const DESCRIPTION = "A browser-first mesh VPN on WireGuard";

export const viewport: Viewport = {
  colorScheme: "light dark",
  themeColor: [
    { media: "(prefers-color-scheme: light)", color: "#f7f7f5" },
    { media: "(prefers-color-scheme: dark)", color: "#111315" },
  ],
};

/** The console's sections and the scope each needs to be listed. */
const SECTIONS: (NavItem & { scope: Scope })[] = [
  { href: "/machines", label: "Machines", scope: "machines:read" },
  { href: "/connect", label: "Connect", scope: "machines:write" },
  { href: "/users", label: "Users", scope: "users:read" },
  { href: "/keys", label: "Keys", scope: "keys:read" },
  { href: "/acls", label: "Access controls", scope: "policy:read" },
  { href: "/dns", label: "DNS", scope: "dns:read" },
  { href: "/logs", label: "Logs", scope: "logs:read" },
  { href: "/settings", label: "Settings", scope: "settings:read" },
];

/**
 * The logged-in actor, or null: public pages (/, /login, /setup, /invite) render without it.
 * Once per request (the title and the shell both ask).
 */
const currentActor = cache(async (): Promise<Actor | null> => {
  try {
    return await getPageActor();
  } catch (err) {
    // Next's own control flow (dynamic rendering bail-outs, redirects) must pass through.
    unstable_rethrow(err);
    return null;
  }
});

/** Page titles name the tailnet for those logged in to it ("Machines · acme · Trellis"), not for strangers. */
export async function generateMetadata(): Promise<Metadata> {
  const name = (await currentActor()) ? await tailnetName(getRuntime()) : null;
  const suffix = name ? `${name} · Trellis` : "Trellis";
  return { title: { default: suffix, template: `%s · ${suffix}` }, description: DESCRIPTION };
}

/** Everyone who may add machines has this browser's node at hand on every page (Connect starts it). */
function MaybeNode({ actor, children }: { actor: Actor; children: ReactNode }) {
  return actor.scopes.has("machines:write") ? (
    <BrowserNodeProvider userId={actor.userId}>{children}</BrowserNodeProvider>
  ) : (
    <>{children}</>
  );
}

export default async function RootLayout({ children }: { children: ReactNode }) {
  const actor = await currentActor();
  const tailnet = actor ? await tailnetName(getRuntime()) : undefined;
  return (
    // data-theme is set before hydration by ThemeScript, so React must not complain about it.
    <html lang="en" suppressHydrationWarning>
      <head>
        <ThemeScript />
      </head>
      <body>
        <a className="skip-link" href="#main">
          Skip to content
        </a>
        {actor ? (
          <MaybeNode actor={actor}>
            <div className="shell">
              <aside className="sidebar">
                <div className="sidebar-head">
                  <Brand href="/machines" />
                  <p className="tailnet-name" data-testid="tailnet-name" title={tailnet}>
                    {tailnet}
                  </p>
                </div>
                <SideNav
                  items={SECTIONS.filter((s) => actor.scopes.has(s.scope)).map(({ href, label }) => ({
                    href,
                    label,
                  }))}
                />
                <div className="sidebar-foot">
                  <div className="whoami">
                    <span className="whoami-email" title={actor.email}>
                      {actor.email}
                    </span>
                    <span className={`badge badge-role-${actor.role}`} data-testid="whoami-role">
                      {actor.role}
                    </span>
                  </div>
                  {actor.scopes.has("machines:write") ? <BrowserNodeBadge /> : null}
                  <div className="sidebar-controls">
                    <ThemeSwitch />
                    <SignOutButton />
                  </div>
                </div>
              </aside>
              <main id="main" className="console-main" tabIndex={-1}>
                {children}
              </main>
              <LiveRefresh />
            </div>
          </MaybeNode>
        ) : (
          <>
            <header className="topbar">
              <Brand />
              <ThemeSwitch />
            </header>
            <main id="main" className="main" tabIndex={-1}>
              {children}
            </main>
          </>
        )}
      </body>
    </html>
  );
}
