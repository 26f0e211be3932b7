// next-auth configuration, built per request from the running server's
// config: local accounts (credentials) always, OpenID Connect when configured.
// Sessions: next-auth's encrypted JWT cookie carries only the id of a Session
// row (control/src/auth/sessions.ts); every request re-reads that row and the
// user, so logout, removal and role changes take effect at once.
import type { NextAuthOptions } from "next-auth";
import CredentialsProvider from "next-auth/providers/credentials";
import { ControlError } from "@trellis/control/errors";
import {
  LoginError,
  createSession,
  deleteSession,
  upsertOidcUser,
  verifyLogin,
  SESSION_TTL_MS,
} from "@trellis/control/auth";
import { getRuntime } from "./api";
import { encodeLoginError } from "./login-params";

/** Header the custom server sets from the socket (any client-sent value is overwritten). */
export const REMOTE_ADDR_HEADER = "x-trellis-remote-addr";

interface OidcClaims {
  sub: string;
  email?: string;
  email_verified?: boolean;
  name?: string;
  preferred_username?: string;
  [claim: string]: unknown;
}

function groupsOf(profile: OidcClaims, claim: string): string[] {
  const v = profile[claim];
  return Array.isArray(v) ? v.filter((g): g is string => typeof g === "string") : [];
}

export function authOptions(): NextAuthOptions {
  const rt = getRuntime();
  const oidc = rt.config.oidc;
  const providers: NextAuthOptions["providers"] = [
    CredentialsProvider({
      id: "credentials",
      name: "Email and password",
      credentials: { email: { type: "email" }, password: { type: "password" } },
      async authorize(credentials, req) {
        const headers = (req.headers ?? {}) as Record<string, string | undefined>;
        const address = headers[REMOTE_ADDR_HEADER] ?? "unknown";
        try {
          const user = await verifyLogin(
            rt.db,
            rt.loginThrottle,
            credentials?.email,
            credentials?.password,
            address,
          );
          return { id: user.id, email: user.email, name: user.name };
        } catch (err) {
          // next-auth turns a thrown Error's message into the login page's ?error=:
          // a code and the throttle's numbers, which the page words itself.
          if (ControlError.is(err)) throw new Error(encodeLoginError(err.code, LoginError.throttleOf(err)));
          rt.log.error({ err }, "login failed");
          throw new Error("server_error");
        }
      },
    }),
  ];
  if (oidc) {
    providers.push({
      id: "oidc",
      name: oidc.name,
      type: "oauth",
      wellKnown: `${oidc.issuer}/.well-known/openid-configuration`,
      clientId: oidc.clientId,
      clientSecret: oidc.clientSecret,
      authorization: { params: { scope: oidc.scopes } },
      idToken: true,
      checks: ["pkce", "state", "nonce"],
      profile(p: OidcClaims) {
        return { id: p.sub, email: p.email ?? null, name: p.name ?? p.preferred_username ?? null };
      },
    });
  }
  const oidcSettings = oidc && {
    issuer: oidc.issuer,
    adminGroups: oidc.adminGroups,
    auditorGroups: oidc.auditorGroups,
    allowedGroups: oidc.allowedGroups,
  };
  const oidcUser = (profile: OidcClaims) =>
    upsertOidcUser(
      rt.db,
      oidcSettings!,
      {
        sub: String(profile.sub),
        email: profile.email ?? null,
        emailVerified: profile.email_verified === true,
        name: profile.name ?? profile.preferred_username ?? null,
        groups: groupsOf(profile, oidc!.groupsClaim),
      },
      (e) => rt.events.publish(e),
    );

  return {
    secret: process.env.NEXTAUTH_SECRET,
    providers,
    session: { strategy: "jwt", maxAge: SESSION_TTL_MS / 1000 },
    useSecureCookies: rt.config.publicUrl.startsWith("https://"),
    pages: { signIn: "/login", error: "/login" },
    logger: {
      error: (code, meta) => rt.log.warn({ code, meta }, "next-auth error"),
      warn: (code) => rt.log.debug({ code }, "next-auth warning"),
      debug: () => undefined,
    },
    callbacks: {
      async signIn({ account, profile }) {
        if (account?.provider !== "oidc") return true;
        try {
          await oidcUser(profile as OidcClaims);
          return true;
        } catch (err) {
          // A code, not text: the login page shows only the codes it knows (lib/login-params.ts).
          if (ControlError.is(err)) return `/login?error=${encodeURIComponent(err.code)}`;
          throw err;
        }
      },
      async jwt({ token, user, account, profile }) {
        if (!account) return token; // a later request: the token is the session id, nothing to refresh
        const userId = account.provider === "oidc" ? await oidcUser(profile as OidcClaims) : user.id;
        const session = await createSession(rt.db, userId);
        rt.log.info({ user: userId, provider: account.provider }, "user logged in");
        // Only the session id travels in the cookie; name and email are read from the database.
        return { sid: session.id };
      },
      session({ session }) {
        return { expires: session.expires };
      },
    },
    events: {
      async signOut({ token }) {
        const sid = (token as { sid?: unknown } | null)?.sid;
        if (typeof sid === "string") await deleteSession(rt.db, sid);
      },
    },
  };
}
