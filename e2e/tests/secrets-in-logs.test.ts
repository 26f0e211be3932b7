// Secrets never reach the logs: the server runs at its most talkative level
// (trace) while a session makes every kind of secret it handles — the setup
// admin's password and a wrong one, a pre-auth key, an API token, an
// invitation's sign-up token, a node's private key (signing requests),
// and the setup link's token — and then every log line it wrote is searched
// for each of them, in the forms they travel in.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ControlClient, keyHolder } from "@trellis/client";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { ADMIN_PASSWORD, api, firstAdmin, login, type Caller } from "../src/console";
import { startTrellis, tempDataDir, type RunningTrellis } from "../src/server";

const data = tempDataDir();
let trellis: RunningTrellis;
let admin: Caller;

beforeAll(async () => {
  trellis = await startTrellis({ dataDir: data.dir, env: { TRELLIS_LOG_LEVEL: "trace" } });
}, 180_000);

afterAll(async () => {
  await trellis?.stop();
  data.remove();
});

describe("the server's logs", () => {
  it("hold none of the secrets a session made, even at trace level", async () => {
    const url = trellis.url;
    const secrets: Record<string, string> = {};
    secrets.setupToken = /token=([\w-]+)/.exec(trellis.setupLink()!)![1]!;
    admin = await firstAdmin(url, trellis.setupLink());
    secrets.adminPassword = ADMIN_PASSWORD;
    secrets.wrongPassword = "a wrong password, logged nowhere";
    await expect(login(url, "ada@example.com", secrets.wrongPassword)).rejects.toThrow();

    const key = await api(url, admin, "POST", "/api/v1/keys", { reusable: true });
    expect(key.status).toBe(201);
    secrets.preAuthKey = key.body.key as string;
    const token = await api(url, admin, "POST", "/api/v1/tokens", {
      description: "logs",
      scopes: ["machines:read"],
    });
    expect(token.status).toBe(201);
    secrets.apiToken = token.body.token as string;
    expect((await api(url, { token: secrets.apiToken }, "GET", "/api/v1/machines")).status).toBe(200);
    const invitation = await api(url, admin, "POST", "/api/v1/invitations", { email: "max@example.com" });
    expect(invitation.status).toBe(201);
    secrets.invitationToken = /#token=([\w-]+)$/.exec(invitation.body.url as string)![1]!;
    const accepted = await api(url, null, "POST", "/api/invitations/accept", {
      token: secrets.invitationToken,
      name: "Max",
      password: "max's own long password",
    });
    expect(accepted.status).toBe(201);
    secrets.memberPassword = "max's own long password";

    const node = generateKeyPair();
    const client = new ControlClient({ baseUrl: url, key: keyHolder(node.privateKey) });
    await client.register({ preAuthKey: secrets.preAuthKey, hostname: "logged", os: "linux" });
    await client.updateEndpoints({ endpoints: ["192.0.2.1:41641"] });
    secrets.nodePrivateKeyHex = Buffer.from(node.privateKey).toString("hex");
    secrets.nodePrivateKeyBase64 = Buffer.from(node.privateKey).toString("base64");

    // Give the logger a moment to flush what these requests wrote.
    await new Promise((r) => setTimeout(r, 1000));
    // The log is the JSON lines (on stderr, and any on stdout); the start banner on stdout
    // prints the setup link to the operator on purpose, once, and is not searched.
    const logs = (trellis.stderr() + "\n" + trellis.stdout())
      .split("\n")
      .filter((l) => l.trimStart().startsWith("{"))
      .join("\n");
    // The log was captured: the registration above is in it.
    expect(logs).toContain('"msg":"node registered"');
    for (const [what, secret] of Object.entries(secrets)) {
      const at = logs.indexOf(secret);
      expect(at, `${what} appears in the logs: …${logs.slice(Math.max(0, at - 300), at + 80)}…`).toBe(-1);
    }
  }, 120_000);
});
