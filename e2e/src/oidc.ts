// A real OpenID Connect provider (panva's oidc-provider) on loopback, for
// login tests. Its development interactions render a login form that accepts
// any login name with any password; the name picks one of `accounts`.
import { createServer, type Server } from "node:http";
import type { Page } from "playwright-core";
import Provider from "oidc-provider";
import { freePort } from "./server";

export interface TestAccount {
  email: string;
  name: string;
  groups: string[];
}

export interface RunningOidc {
  issuer: string;
  clientId: string;
  clientSecret: string;
  stop(): Promise<void>;
}

export async function startOidcProvider(opts: {
  /** Trellis's public URL: the client's redirect URI is derived from it. */
  trellisUrl: string;
  accounts: Record<string, TestAccount>;
  /** The address it listens on (and names in its issuer URL); loopback unless told. */
  host?: string;
}): Promise<RunningOidc> {
  const host = opts.host ?? "127.0.0.1";
  const port = await freePort();
  const issuer = `http://${host}:${port}`;
  const clientId = "trellis";
  const clientSecret = "trellis-test-client-secret-0123456789";
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [`${opts.trellisUrl}/api/auth/callback/oidc`],
        grant_types: ["authorization_code"],
        response_types: ["code"],
      },
    ],
    scopes: ["openid", "email", "profile", "groups"],
    claims: {
      openid: ["sub"],
      email: ["email", "email_verified"],
      profile: ["name"],
      groups: ["groups"],
    },
    // Put name, email and groups in the id_token itself, as many real providers do.
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ["trellis-test-oidc-cookie-key"] },
    findAccount(_ctx, id) {
      const acct = opts.accounts[id];
      if (!acct) return undefined;
      return {
        accountId: id,
        claims: () => ({
          sub: id,
          email: acct.email,
          email_verified: true,
          name: acct.name,
          groups: acct.groups,
        }),
      };
    },
  });
  const server: Server = createServer(provider.callback());
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  return {
    issuer,
    clientId,
    clientSecret,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * Sign in on `page` through the provider's own pages (oidc-provider's
 * development interactions: any password), consenting when asked; returns on
 * Trellis's Machines page.
 */
export async function oidcLogin(
  page: Page,
  trellisUrl: string,
  oidc: RunningOidc,
  account: string,
): Promise<Page> {
  await page.goto(trellisUrl + "/login");
  await page.getByTestId("oidc-login").click();
  await page.waitForURL((u) => u.toString().startsWith(oidc.issuer), { timeout: 15_000 });
  await page.locator("input[name=login]").fill(account);
  await page.locator("input[name=password]").fill("any password");
  await page.locator("button[type=submit]").click();
  const deadline = Date.now() + 20_000;
  while (!page.url().startsWith(trellisUrl)) {
    if (Date.now() > deadline) throw new Error(`OIDC login stuck at ${page.url()}`);
    const consent = page.locator("button[type=submit]");
    if (page.url().startsWith(oidc.issuer) && (await consent.count()) > 0) await consent.first().click();
    await page.waitForTimeout(300);
  }
  await page.waitForURL(/\/machines/, { timeout: 15_000 });
  return page;
}
