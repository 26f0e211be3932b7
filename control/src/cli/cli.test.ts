// trellis-server against real databases: every command, its text and --json
// answers, its audit entries (as the local operator), and bad input refused
// with one line, exit code 1 and nothing changed. Commands run in-process
// through main(); one test spawns the real bin. A server running meanwhile
// sees the changes (SQLite: sqlite-watch.ts; PostgreSQL: the outbox).
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { migrate, openDatabase, type Database } from "@trellis/db";
import { createLogger } from "@trellis/log";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { wgKeyText } from "@trellis/proto";
import { allocateAddresses } from "../addresses";
import { savePolicyText } from "../admin/policy";
import { adminContext, auditEvents, createNode, createUser } from "../admin/testing";
import { actorOf } from "../admin/testing";
import { localOperator } from "../auth/actor";
import { LoginThrottle, throttleOptions } from "../auth/throttle";
import { tokenActor } from "../auth/tokens";
import { loadConfig } from "../config";
import { ControlError } from "../errors";
import { ControlRuntime } from "../runtime";
import { completeSetup } from "../setup";
import { updateTailnetSettings } from "../settings";
import { preAuthKey, serveNodeApi, TestNode } from "../testing/control";
import { PROVIDERS, testDatabases } from "../testing/db";
import { main } from "./cli";
import { COMMANDS } from "./commands";

const BIN = fileURLToPath(new URL("../../bin/trellis-server", import.meta.url));
const PUBLIC_URL = "https://vpn.example.com";
const tmp = mkdtempSync(join(tmpdir(), "trellis-cli-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const POLICY = `{
  // Servers are tagged; admins own the tag.
  "tagOwners": { "tag:server": ["autogroup:admin"] },
  "acls": [{ "action": "accept", "src": ["*"], "dst": ["*:*"] }],
}
`;

/** Every row a command could change, to prove that a refused one changed nothing. */
async function state(db: Database) {
  const p = db.prisma;
  const [users, nodes, keys, tokens, invitations, policies, audit, settings] = await Promise.all([
    p.user.findMany({ orderBy: { id: "asc" } }),
    p.node.findMany({ orderBy: { id: "asc" } }),
    p.preAuthKey.findMany({ orderBy: { id: "asc" } }),
    p.apiToken.findMany({ orderBy: { id: "asc" } }),
    p.invitation.findMany({ orderBy: { id: "asc" } }),
    p.policyVersion.findMany({ orderBy: { id: "asc" } }),
    p.auditEvent.findMany({ orderBy: { id: "asc" } }),
    p.setting.findMany({ orderBy: { key: "asc" } }),
  ]);
  return { users, nodes, keys, tokens, invitations, policies, audit, settings };
}

let dirs = 0;

for (const { provider, skip } of PROVIDERS) {
  describe.skipIf(skip)(`trellis-server on ${provider}`, () => {
    const dbs = testDatabases(provider);
    const open: Database[] = [];
    afterEach(async () => {
      await Promise.all(open.splice(0).map((d) => d.close()));
    });

    /**
     * A server's database as trellis-server finds it: SQLite in a data
     * directory of its own (TRELLIS_DATA_DIR), or a PostgreSQL database
     * (DATABASE_URL), migrated; and `run`, which runs a command on it.
     */
    async function world() {
      const dataDir = join(tmp, `data${++dirs}`);
      const url = provider === "sqlite" ? `file:${join(dataDir, "trellis.db")}` : dbs.url();
      await migrate(url);
      const db = await openDatabase(url);
      open.push(db);
      const env: NodeJS.ProcessEnv = {
        TRELLIS_DATA_DIR: dataDir,
        TRELLIS_PUBLIC_URL: PUBLIC_URL,
        TRELLIS_LOG_LEVEL: "silent",
        ...(provider === "postgresql" ? { DATABASE_URL: url } : {}),
      };
      const run = async (argv: string[], opts: { stdin?: string; env?: NodeJS.ProcessEnv } = {}) => {
        let out = "";
        let err = "";
        const code = await main(argv, {
          stdout: (s) => (out += s),
          stderr: (s) => (err += s),
          env: { ...env, ...opts.env },
          cwd: tmp,
          ...(opts.stdin !== undefined ? { stdin: Readable.from([opts.stdin]) } : {}),
        });
        return { code, out, err };
      };
      /** Run `argv`, expecting a refusal: exit code 1, one line on stderr naming the command, nothing changed. */
      const refused = async (argv: string[], opts: { stdin?: string } = {}) => {
        const before = await state(db);
        const r = await run(argv, opts);
        expect(r.code, `${argv.join(" ")}: ${r.out}${r.err}`).toBe(1);
        expect(r.out).toBe("");
        const lines = r.err.trimEnd().split("\n");
        if (!argv.includes("--json")) {
          for (const line of lines) expect(line).toMatch(/^trellis-server[ a-z-]*: \S/);
        }
        expect(await state(db)).toEqual(before);
        return argv.includes("--json") ? (JSON.parse(r.err) as Record<string, unknown>) : r.err;
      };
      const file = (name: string, text: string) => {
        const path = join(tmp, `${dirs}-${name}`);
        writeFileSync(path, text);
        return path;
      };
      return { db, url, env, dataDir, run, refused, file };
    }

    const json = <T = Record<string, unknown>>(r: { code: number; out: string; err: string }): T => {
      expect(r.code, r.err).toBe(0);
      return JSON.parse(r.out) as T;
    };

    it("explains itself: every command in --help, a usage for each, and unknown commands refused", async () => {
      const { run, refused } = await world();
      const help = await run(["--help"]);
      expect(help.code).toBe(0);
      for (const c of COMMANDS) {
        expect(help.out).toContain(`  ${c.name} `);
        const own = await run([...c.name.split(" "), "--help"]);
        expect(own.code).toBe(0);
        expect(own.out).toMatch(new RegExp(`^usage: trellis-server ${c.name} `));
      }
      expect((await run(["machines", "--help"])).out).toContain("trellis-server machines routes MACHINE");
      expect(await refused([])).toBe("trellis-server: no command given (see trellis-server --help)\n");
      expect(await refused(["nodes", "list"])).toMatch(/unknown command "nodes"/);
      expect(await refused(["users", "destroy"])).toMatch(/^trellis-server users: unknown command "destroy"/);
      expect(await refused(["users"])).toMatch(/which command\?/);
      expect(await refused(["users", "list", "--bogus"])).toBe(
        "trellis-server users list: Unknown option '--bogus' (see trellis-server users list --help)\n",
      );
      expect(await refused(["users", "set-role", "a@example.com"])).toMatch(/expected USER ROLE/);
      expect(await refused(["keys", "list", "extra"])).toMatch(/takes no arguments/);
      expect(await refused(["users", "list", "--bogus", "--json"])).toMatchObject({ error: "usage" });
    });

    it("reads the server's configuration: a bad variable is named, a missing SQLite database is not created", async () => {
      const { run, dataDir } = await world();
      expect(await run(["users", "list"], { env: { PORT: "x" } })).toEqual({
        code: 1,
        out: "",
        err: "trellis-server: configuration error: PORT: PORT must be a number\n",
      });
      expect(JSON.parse((await run(["users", "list", "--json"], { env: { PORT: "x" } })).err)).toMatchObject({
        error: "configuration",
      });
      // A database this version's migrations have not reached is left to the server to migrate.
      const blank = provider === "sqlite" ? join(tmp, `blank${dirs}`) : null;
      if (blank) {
        mkdirSync(blank);
        writeFileSync(join(blank, "trellis.db"), "");
      }
      const outdated = await run(["users", "list", "--json"], {
        env: blank ? { TRELLIS_DATA_DIR: blank } : { DATABASE_URL: dbs.url() },
      });
      expect(outdated).toMatchObject({ code: 1, out: "" });
      expect(JSON.parse(outdated.err)).toMatchObject({
        error: "database_outdated",
        message: expect.stringMatching(
          /^the database lacks \d+ migrations of this version \(\d+_init, .*\): start the server once/,
        ),
      });
      if (provider !== "sqlite") return;
      const elsewhere = join(dataDir, "..", `missing${dirs}`);
      const r = await run(["users", "list"], { env: { TRELLIS_DATA_DIR: elsewhere } });
      expect(r).toMatchObject({ code: 1, out: "" });
      expect(r.err).toMatch(
        /^trellis-server users list: no database at .*trellis\.db: start the server there first/,
      );
      expect(existsSync(elsewhere)).toBe(false);
    });

    it("users: list, invite, change roles and remove, audited as the local operator", async () => {
      const { db, run, refused } = await world();
      const root = await createUser(db, "admin", "root@example.com");
      const ann = await createUser(db, "member", "ann@example.com");
      await createNode(db, `ann-laptop-${dirs}`, { userId: ann.id });

      const listed = await run(["users", "list"]);
      expect(listed.code).toBe(0);
      expect(listed.out.split("\n")[0]).toMatch(/^EMAIL\s+NAME\s+ROLE\s+LOGIN\s+MACHINES\s+ID$/);
      expect(listed.out).toMatch(/ann@example\.com\s+ann\s+member\s+local\s+1\s+\S+/);
      const page = json<{ items: { email: string; role: string; machines: number }[] }>(
        await run(["users", "list", "--json", "--role", "member"]),
      );
      expect(page.items.map((u) => [u.email, u.role, u.machines])).toEqual([
        ["ann@example.com", "member", 1],
      ]);
      expect(await refused(["users", "list", "--role", "owner"])).toMatch(
        /^trellis-server users list: --role: /,
      );

      // Invite: the link is printed (alone on stdout), the invitation stored and audited.
      const invited = await run(["users", "create", "Bob@Example.com", "--role", "auditor"]);
      expect(invited.code).toBe(0);
      expect(invited.out).toMatch(/^https:\/\/vpn\.example\.com\/invite#token=[\w-]+\n$/);
      expect(invited.err).toMatch(/Invited bob@example\.com as an auditor/);
      const created = json<{ invitation: { email: string; role: string; createdBy: string }; url: string }>(
        await run(["users", "create", "cy@example.com", "--json", "--expires-in-hours", "1"]),
      );
      expect(created).toMatchObject({
        invitation: { email: "cy@example.com", role: "member", createdBy: "local" },
        url: expect.stringMatching(/^https:\/\/vpn\.example\.com\/invite#token=/),
      });
      expect((await auditEvents(db, "invitation.create")).map((e) => [e.actor, e.detail])).toEqual([
        ["local", { after: { email: "bob@example.com", role: "auditor" } }],
        ["local", { after: { email: "cy@example.com", role: "member" } }],
      ]);
      expect(await refused(["users", "create", "not-an-email"])).toMatch(/EMAIL: must be an email address/);
      expect(await refused(["users", "create", "ann@example.com"])).toMatch(
        /ann@example\.com already has an account/,
      );
      expect(await refused(["users", "create", "d@example.com", "--expires-in-hours", "9999"])).toMatch(
        /--expires-in-hours: must be at most 720/,
      );
      expect(await refused(["users", "create", "d@example.com", "--expires-in-hours", "soon"])).toMatch(
        /--expires-in-hours: "soon" is not a whole number/,
      );

      // Roles.
      const promoted = await run(["users", "set-role", "ANN@example.com", "admin"]);
      expect(promoted).toMatchObject({ code: 0, out: "ann@example.com is now an admin (was a member)\n" });
      expect(json(await run(["users", "set-role", ann.id, "admin", "--json"]))).toMatchObject({
        id: ann.id,
        email: "ann@example.com",
        role: "admin",
        machines: 1,
      });
      expect((await auditEvents(db, "user.role")).map((e) => [e.actor, e.target, e.detail])).toEqual([
        ["local", `user:${ann.id}`, { before: { role: "member" }, after: { role: "admin" } }],
      ]);
      expect(await refused(["users", "set-role", "ann@example.com", "owner"])).toMatch(
        /ROLE: must be one of/,
      );
      expect(await refused(["users", "set-role", "nobody@example.com", "admin"])).toBe(
        "trellis-server users set-role: no user nobody@example.com\n",
      );

      // Failed passwords from one address: the shell lets ann sign in again at once.
      expect((await run(["users", "unthrottle", "ann@example.com"])).out).toBe(
        "ann@example.com was not held back\n",
      );
      const throttle = new LoginThrottle(db, throttleOptions(1, 600_000));
      expect((await throttle.begin("ann@example.com", "203.0.113.9")).allowed).toBe(true);
      expect((await throttle.begin("ann@example.com", "203.0.113.9")).allowed).toBe(false);
      expect((await run(["users", "unthrottle", "ann@example.com"])).out).toMatch(
        /^ann@example\.com may sign in again at once \(was held back until \d{4}-/,
      );
      expect((await throttle.begin("ann@example.com", "203.0.113.9")).allowed).toBe(true);
      expect((await auditEvents(db, "user.login_unthrottled"))[0]).toMatchObject({
        actor: "local",
        target: `user:${ann.id}`,
      });

      // Removal, down to the last admin.
      const removed = await run(["users", "remove", "ann@example.com"]);
      expect(removed).toMatchObject({ code: 0, out: "removed ann@example.com and 1 machine\n" });
      expect(await db.prisma.node.count()).toBe(0);
      expect((await auditEvents(db, "user.remove"))[0]).toMatchObject({
        actor: "local",
        target: `user:${ann.id}`,
      });
      expect(await refused(["users", "set-role", "root@example.com", "member"])).toMatch(
        /root@example\.com is the last admin/,
      );
      expect(await refused(["users", "remove", "root@example.com", "--json"])).toEqual({
        error: "conflict",
        message: "root@example.com is the last admin and cannot be removed",
      });
      const eve = await createUser(db, "member", "eve@example.com");
      expect(json(await run(["users", "remove", eve.id, "--json"]))).toMatchObject({
        removed: { id: eve.id, email: "eve@example.com", role: "member" },
      });
      expect(await db.prisma.user.findMany({ select: { id: true } })).toEqual([{ id: root.id }]);
    });

    it("keys: create (printed once), list without the secret, revoke by id or prefix", async () => {
      const { db, run, refused } = await world();
      const ann = await createUser(db, "member", "ann@example.com");

      const made = await run(["keys", "create", "--user", "ann@example.com", "--reusable", "--expiry", "7d"]);
      expect(made.code).toBe(0);
      const key = made.out.trim();
      expect(key).toMatch(/^trellis-auth-[0-9a-f]{12}-[\w-]{43}$/);
      expect(made.err).toContain(`trellis up --login-server ${PUBLIC_URL} --auth-key ${key}`);
      const row = await db.prisma.preAuthKey.findFirstOrThrow();
      expect(row).toMatchObject({ userId: ann.id, reusable: true, ephemeral: false, createdBy: "local" });
      expect(row.expiresAt.getTime() - row.createdAt.getTime()).toBeGreaterThan(7 * 86_400_000 - 60_000);
      expect(row.hash).not.toContain(key.slice(-43));

      // Tags need the policy's tagOwners, as in the console.
      expect(await refused(["keys", "create", "--tags", "tag:server"])).toBe(
        "trellis-server keys create: --tags: tag:server is not defined in the policy's tagOwners\n",
      );
      await savePolicyText(adminContext(db), localOperator(), { text: POLICY });
      const tagged = json<{ key: string; info: Record<string, unknown> }>(
        await run(["keys", "create", "--tags", "tag:server", "--ephemeral", "--description", "ci", "--json"]),
      );
      expect(tagged.key).toMatch(/^trellis-auth-/);
      expect(tagged.info).toMatchObject({
        tags: ["tag:server"],
        userId: null,
        ephemeral: true,
        reusable: false,
        description: "ci",
        createdBy: "local",
        revokedAt: null,
      });
      // The console's default lifetime: one day.
      const day = Date.parse(tagged.info.expiresAt as string) - Date.parse(tagged.info.createdAt as string);
      expect(Math.abs(day - 86_400_000)).toBeLessThan(60_000);
      expect((await auditEvents(db, "preauthkey.create")).map((e) => e.actor)).toEqual(["local", "local"]);

      expect(await refused(["keys", "create"])).toMatch(
        /--tags: a key needs tags or a user to own the nodes/,
      );
      expect(await refused(["keys", "create", "--user", "ann@example.com", "--expiry", "91d"])).toMatch(
        /^trellis-server keys create: --expiry: /,
      );
      expect(await refused(["keys", "create", "--user", "ann@example.com", "--expiry", "a week"])).toMatch(
        /--expiry: "a week" is not a duration/,
      );
      expect(await refused(["keys", "create", "--user", "ann@example.com", "--tags", "tag:server"])).toMatch(
        /--user: a tagged key registers tagged nodes, which have no user/,
      );
      expect(await refused(["keys", "create", "--user", "zed@example.com"])).toMatch(
        /no user zed@example\.com/,
      );

      const listed = await run(["keys", "list"]);
      expect(listed.code).toBe(0);
      expect(listed.out).not.toContain(key);
      expect(listed.out).toMatch(/ann@example\.com\s+reusable\s+0\s+\S+ \S+\s+valid/);
      expect(listed.out).toMatch(/tag:server\s+single-use,ephemeral\s+0/);
      const items = json<{ items: { id: string; prefix: string }[] }>(
        await run(["keys", "list", "--json"]),
      ).items;
      expect(items).toHaveLength(2);
      expect(JSON.stringify(items)).not.toContain(key.slice(-43));

      const prefix = key.slice(0, "trellis-auth-".length + 12);
      expect(await run(["keys", "revoke", prefix])).toMatchObject({ code: 0, out: `revoked ${prefix}\n` });
      expect(await run(["keys", "revoke", row.id])).toMatchObject({
        code: 0,
        out: `${prefix} was already revoked\n`,
      });
      const other = items.find((k) => k.id !== row.id)!;
      expect(json(await run(["keys", "revoke", other.id, "--json"]))).toMatchObject({
        id: other.id,
        revokedAt: expect.any(String),
      });
      expect((await auditEvents(db, "preauthkey.revoke")).map((e) => [e.actor, e.target])).toEqual([
        ["local", `preauthkey:${row.id}`],
        ["local", `preauthkey:${other.id}`],
      ]);
      expect(await refused(["keys", "revoke", "trellis-auth-000000000000"])).toMatch(/no pre-auth key/);
    });

    it("machines: list, approve, routes (advertised only, canonical), remove", async () => {
      const { db, run, refused } = await world();
      const ann = await createUser(db, "member", "ann@example.com");
      const n = dirs;
      const laptop = await createNode(db, `laptop-${n}`, { userId: ann.id, online: true });
      const gw = await createNode(db, `gw-${n}`, {
        userId: ann.id,
        authorized: false,
        advertisedRoutes: ["10.20.0.0/24", "192.168.1.0/24", "0.0.0.0/0", "::/0"],
      });

      const listed = await run(["machines", "list"]);
      expect(listed.code).toBe(0);
      expect(listed.out).toMatch(
        new RegExp(`gw-${n}\\s+100\\.64\\.\\S+\\s+ann@example\\.com\\s+pending approval\\s+never`),
      );
      expect(listed.out).toMatch(
        new RegExp(`laptop-${n}\\s+100\\.64\\.\\S+\\s+ann@example\\.com\\s+online\\s+now`),
      );
      const pending = json<{ items: { name: string; authorized: boolean }[] }>(
        await run(["machines", "list", "--status", "pending", "--json"]),
      );
      expect(pending.items.map((m) => [m.name, m.authorized])).toEqual([[`gw-${n}`, false]]);
      expect(
        json<{ items: unknown[] }>(await run(["machines", "list", "--user", "ann@example.com", "--json"]))
          .items,
      ).toHaveLength(2);
      expect(await refused(["machines", "list", "--status", "asleep"])).toMatch(/--status: must be one of/);

      // Routes: only advertised ones, as canonical prefixes; a refused route leaves the machine pending.
      expect(await refused(["machines", "approve", `gw-${n}`, "--routes", "10.99.0.0/16"])).toBe(
        `trellis-server machines approve: --routes: gw-${n} does not advertise 10.99.0.0/16\n`,
      );
      expect(await refused(["machines", "routes", `gw-${n}`, "--approve", "10.20.0.5/24"])).toBe(
        `trellis-server machines routes: --approve: "10.20.0.5/24": host bits are set; the network is 10.20.0.0/24\n`,
      );
      expect(await refused(["machines", "routes", `gw-${n}`, "--approve", "10.20.0.0/33"])).toMatch(
        /--approve: "10.20.0.0\/33": /,
      );
      expect(await refused(["machines", "routes", `gw-${n}`, "--unapprove", "10.20.0.0/24"])).toMatch(
        /--unapprove: gw-\d+ has no approved route 10\.20\.0\.0\/24/,
      );

      const approved = await run(["machines", "approve", `GW-${n}`, "--routes", "10.20.0.0/24"]);
      expect(approved).toMatchObject({ code: 0, out: `approved gw-${n}\napproved routes: 10.20.0.0/24\n` });
      expect(await run(["machines", "approve", gw.id])).toMatchObject({
        out: `gw-${n} was already approved\n`,
      });
      const routes = await run(["machines", "routes", `gw-${n}`]);
      expect(routes.out.split("\n").map((l) => l.split(/\s+/).join(" "))).toEqual([
        "ROUTE ADVERTISED APPROVED",
        "10.20.0.0/24 yes yes",
        "192.168.1.0/24 yes no",
        "0.0.0.0/0 yes no",
        "::/0 yes no",
        "",
      ]);
      const exit = json<{ approvedRoutes: string[]; exitNodeApproved: boolean; authorized: boolean }>(
        await run([
          "machines",
          "routes",
          `gw-${n}`,
          "--approve",
          "0.0.0.0/0,::/0",
          "--unapprove",
          "10.20.0.0/24",
          "--json",
        ]),
      );
      expect(exit).toMatchObject({
        approvedRoutes: ["0.0.0.0/0", "::/0"],
        exitNodeApproved: true,
        authorized: true,
      });
      expect((await auditEvents(db, "node.authorize")).map((e) => [e.actor, e.target])).toEqual([
        ["local", `node:${gw.id}`],
      ]);
      expect((await auditEvents(db, "node.routes")).map((e) => [e.actor, e.detail])).toEqual([
        ["local", { before: [], after: ["10.20.0.0/24"] }],
        ["local", { before: ["10.20.0.0/24"], after: ["0.0.0.0/0", "::/0"] }],
      ]);
      expect(await run(["machines", "routes", `laptop-${n}`])).toMatchObject({
        out: `laptop-${n} advertises no routes\n`,
      });

      expect(await run(["machines", "remove", `laptop-${n}`])).toMatchObject({
        code: 0,
        out: `removed laptop-${n}\n`,
      });
      expect(json(await run(["machines", "remove", gw.id, "--json"]))).toMatchObject({
        removed: { id: gw.id, name: `gw-${n}` },
      });
      expect(await db.prisma.node.count()).toBe(0);
      expect((await auditEvents(db, "node.remove")).map((e) => [e.actor, e.target])).toEqual([
        ["local", `node:${laptop.id}`],
        ["local", `node:${gw.id}`],
      ]);
      expect(await refused(["machines", "remove", `laptop-${n}`])).toMatch(
        /no machine laptop-\d+ \(give its name or id\)/,
      );
      expect(await run(["machines", "list"])).toMatchObject({ out: "no machines\n" });
    });

    it("machines: add a plain WireGuard peer through a gateway, and print its wg-quick file", async () => {
      const { db, run, refused } = await world();
      await createUser(db, "member", "ann@example.com");
      const n = dirs;
      const gw = await createNode(db, `wggw-${n}`, { tags: ["tag:gw"] });
      // Addresses from the registration counter, which the new peer's come from too.
      const addrs = await db.prisma.$transaction((tx) => allocateAddresses(tx));
      await db.prisma.node.update({
        where: { id: gw.id },
        data: { ...addrs, endpoints: JSON.stringify(["198.51.100.7:41641", "10.0.0.2:41641"]) },
      });
      const pub = wgKeyText(generateKeyPair().publicKey);
      const add = (...more: string[]) => [
        "machines",
        "add-wireguard",
        `phone-${n}`,
        "--gateway",
        `wggw-${n}`,
        ...more,
      ];
      expect(await refused(add("--public-key", pub))).toMatch(/give --user or --tags/);
      expect(await refused(add("--public-key", "nope", "--user", "ann@example.com"))).toMatch(
        /^trellis-server machines add-wireguard: --public-key: must be a WireGuard key/,
      );
      const added = await run(add("--public-key", pub, "--user", "ann@example.com"));
      expect(added.code, added.err).toBe(0);
      expect(added.out).toMatch(
        new RegExp(`^added phone-${n} \\(100\\.\\d+\\.\\d+\\.\\d+\\) through wggw-${n}\n$`),
      );
      expect(added.err).toContain(`trellis-server machines wireguard-config phone-${n}`);
      const conf = await run(["machines", "wireguard-config", `phone-${n}`]);
      expect(conf.code, conf.err).toBe(0);
      expect(conf.out).toContain("Endpoint = 198.51.100.7:41641\n");
      expect(conf.out).toContain(`# PrivateKey = <the private key of ${pub}; Trellis never had it>`);
      const other = await run(["machines", "wireguard-config", `phone-${n}`, "--endpoint", "10.0.0.2:41641"]);
      expect(other.out).toContain("Endpoint = 10.0.0.2:41641\n");
      expect(await refused(["machines", "wireguard-config", `wggw-${n}`])).toMatch(
        /is not a plain WireGuard peer/,
      );
    });

    it("policy: get, set from a file or stdin and check, refused at line:column exactly as the console's save", async () => {
      const { db, run, refused, file } = await world();
      const root = await createUser(db, "admin", "root@example.com");
      const initial = await run(["policy", "get"]);
      expect(initial.code).toBe(0);
      expect(initial.out).toContain(`{"action": "accept", "src": ["*"], "dst": ["*:*"]}`);
      expect(json(await run(["policy", "get", "--json"]))).toMatchObject({ version: 0 });

      expect(await run(["policy", "check", file("ok.hujson", POLICY)])).toMatchObject({
        code: 0,
        out: "ok: the policy is valid and its tests pass\n",
      });
      expect(json(await run(["policy", "check", "-", "--json"], { stdin: POLICY }))).toEqual({ ok: true });
      expect(await db.prisma.policyVersion.count()).toBe(0);

      expect(await run(["policy", "set", file("p.hujson", POLICY)])).toMatchObject({
        code: 0,
        out: "saved policy version 1\n",
      });
      expect(
        json(await run(["policy", "set", "-", "--json", "--base-version", "1"], { stdin: POLICY })),
      ).toEqual({ version: 2 });
      expect(json(await run(["policy", "get", "--json"]))).toEqual({ version: 2, text: POLICY });
      expect((await auditEvents(db, "policy.update")).map((e) => e.actor)).toEqual(["local", "local"]);

      // Refusals: each problem on its line, at line:column, as the admin function reports it to the console.
      const broken = `{\n  "acls": [\n    { "action": "accept", "src": ["group:nope"], "dst": ["*:22"] },\n  ],\n}\n`;
      const failing = `{\n  "acls": [{ "action": "accept", "src": ["root@example.com"], "dst": ["*:22"] }],\n  "tests": [{ "src": "root@example.com", "deny": ["*:22"] }],\n}\n`;
      await createNode(db, `box-${dirs}`, { userId: root.id });
      for (const text of [broken, failing, "{ nope"]) {
        const console = await savePolicyText(adminContext(db), actorOf(root), { text }).then(
          () => null,
          (e: unknown) => ControlError.of(e),
        );
        expect(console?.issues?.[0]?.line).toEqual(expect.any(Number));
        const lines = console!.message
          .split("\n")
          .map((l) => `trellis-server policy set: ${l}\n`)
          .join("");
        expect(await refused(["policy", "set", file("bad.hujson", text)])).toBe(lines);
        expect(await refused(["policy", "set", "-"], { stdin: text })).toBe(lines);
        const checked = await run(["policy", "check", file("bad.hujson", text)]);
        expect(checked).toMatchObject({
          code: 1,
          out: "",
          err: lines.replaceAll("policy set:", "policy check:"),
        });
        const asJson = await run(["policy", "check", "-", "--json"], { stdin: text });
        expect(asJson.code).toBe(1);
        expect(JSON.parse(asJson.out)).toEqual({
          ok: false,
          message: console!.message,
          issues: console!.issues,
        });
        expect(JSON.parse((await run(["policy", "set", "-", "--json"], { stdin: text })).err)).toEqual({
          error: console!.code,
          message: console!.message,
          issues: console!.issues,
        });
      }
      expect(await refused(["policy", "set", file("p2.hujson", POLICY), "--base-version", "1"])).toMatch(
        /^trellis-server policy set: the policy was changed \(now version 2\) since you loaded version 1/,
      );
      expect(await refused(["policy", "set", join(tmp, "no-such.hujson")])).toBe(
        `trellis-server policy set: cannot read ${join(tmp, "no-such.hujson")}: no such file\n`,
      );
      expect(await refused(["policy", "set"])).toMatch(/expected FILE/);
      expect(await refused(["policy", "set", "-"], { stdin: `{"acls":[]}${" ".repeat(1024 * 1024)}` })).toBe(
        "trellis-server policy set: FILE: must be at most 1048576 characters\n",
      );
    });

    it("tokens: an API token acting as the user named, within their role, printed once", async () => {
      const { db, run, refused } = await world();
      const ann = await createUser(db, "member", "ann@example.com");
      const made = await run([
        "tokens",
        "create",
        "--user",
        "ann@example.com",
        "--scopes",
        "machines:read",
        "--description",
        "ci",
      ]);
      expect(made.code).toBe(0);
      const token = made.out.trim();
      expect(token).toMatch(/^trellis-api-[0-9a-f]{12}-[\w-]{43}$/);
      expect(made.err).toMatch(/acts as ann@example\.com with machines:read until /);
      const actor = await tokenActor(db, token);
      expect(actor).toMatchObject({ userId: ann.id, role: "member", via: "token" });
      expect([...actor.scopes]).toEqual(["machines:read"]);
      const created = json<{ token: string; info: Record<string, unknown> }>(
        await run([
          "tokens",
          "create",
          "--user",
          ann.id,
          "--scopes",
          "machines:read,machines:write",
          "--expires-in-days",
          "7",
          "--json",
        ]),
      );
      expect(created.info).toMatchObject({
        scopes: ["machines:read", "machines:write"],
        description: "",
        revokedAt: null,
      });
      expect((await auditEvents(db, "apitoken.create")).map((e) => [e.actor, e.detail.userId])).toEqual([
        ["local", ann.id],
        ["local", ann.id],
      ]);

      expect(
        await refused(["tokens", "create", "--user", "ann@example.com", "--scopes", "users:write"]),
      ).toBe("trellis-server tokens create: ann@example.com's role (member) cannot grant users:write\n");
      expect(await refused(["tokens", "create", "--scopes", "machines:read"])).toMatch(/--user is required/);
      expect(await refused(["tokens", "create", "--user", "ann@example.com"])).toMatch(/--scopes: /);
      expect(await refused(["tokens", "create", "--user", "ann@example.com", "--scopes", "root"])).toMatch(
        /--scopes: /,
      );
      expect(
        await refused([
          "tokens",
          "create",
          "--user",
          "ann@example.com",
          "--scopes",
          "machines:read",
          "--expires-in-days",
          "400",
        ]),
      ).toMatch(/--expires-in-days: must be at most 365/);
    });

    it("setup-link: a new one-time link while no admin exists, audited; refused after setup", async () => {
      const { db, run, refused } = await world();
      const first = await run(["setup-link"]);
      expect(first.code).toBe(0);
      expect(first.out).toMatch(/^https:\/\/vpn\.example\.com\/setup#token=[\w-]+\n$/);
      const { url } = json<{ url: string }>(await run(["setup-link", "--json"]));
      // Each link replaces the one before.
      const stale = first.out.trim().split("#token=")[1]!;
      const setup = { email: "root@example.com", name: "Root", password: "correct horse battery" };
      expect(
        ControlError.of(await completeSetup(db, { ...setup, token: stale }).catch((e: unknown) => e)),
      ).toMatchObject({
        code: "bad_setup_token",
      });
      await completeSetup(db, { ...setup, token: url.split("#token=")[1]! });
      expect((await auditEvents(db, "setup.link")).map((e) => [e.actor, e.target])).toEqual([
        ["local", "setup:token"],
        ["local", "setup:token"],
      ]);
      expect(await refused(["setup-link"])).toMatch(
        /^trellis-server setup-link: setup is already complete: an admin exists/,
      );
      expect(await refused(["setup-link", "--json"])).toMatchObject({ error: "setup_complete" });
    });

    it("reaches a server running on the same database: a machine approved from the shell joins its peers' maps", async () => {
      const { db, url, dataDir, run } = await world();
      const config = { ...loadConfig({ TRELLIS_PUBLIC_URL: PUBLIC_URL }, dataDir), databaseUrl: url };
      const rt = await ControlRuntime.open(config, createLogger("test", "silent"), {
        controlKey: generateKeyPair(),
        stream: { coalesceMs: 5 },
        externalWrites: { checkMs: 50 },
        changes: { checkMs: 500 },
      });
      const served = await serveNodeApi(rt);
      try {
        const ann = await createUser(db, "member", "ann@example.com");
        const key = await preAuthKey(rt, { userId: ann.id, reusable: true });
        const a = new TestNode(rt);
        await a.register(key, "alpha");
        await updateTailnetSettings(rt, localOperator(), { nodeApproval: true });
        const b = new TestNode(rt);
        await b.register(key, "beta");
        const stream = await a.stream();
        try {
          await stream.next();
          expect(stream.map.peers).toEqual([]);
          expect(await run(["machines", "approve", "beta"])).toMatchObject({ code: 0 });
          await stream.until((m) => m.peers.some((p) => p.name === "beta"));
          expect(await run(["machines", "remove", "beta"])).toMatchObject({ code: 0 });
          await stream.until((m) => m.peers.length === 0);
        } finally {
          stream.close();
        }
      } finally {
        await served.close();
        await rt.close();
      }
    });
  });
}

describe("the trellis-server bin", () => {
  it("runs from any directory, with the configuration from the environment", async () => {
    const dataDir = join(tmp, "bin-data");
    await migrate(`file:${join(dataDir, "trellis.db")}`);
    const exec = (args: string[]) =>
      new Promise<{ code: number; out: string; err: string }>((resolve) => {
        execFile(
          BIN,
          args,
          {
            cwd: tmpdir(),
            timeout: 60_000,
            env: { PATH: process.env.PATH, TRELLIS_DATA_DIR: dataDir, TRELLIS_LOG_LEVEL: "silent" },
          },
          (err, out, errOut) =>
            resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out, err: errOut }),
        );
      });
    const link = await exec(["setup-link", "--json"]);
    expect(link.code, link.err).toBe(0);
    expect(JSON.parse(link.out)).toEqual({
      url: expect.stringMatching(/^http:\/\/localhost:8080\/setup#token=/),
    });
    expect(await exec(["users", "set-role", "nobody@example.com", "admin"])).toEqual({
      code: 1,
      out: "",
      err: "trellis-server users set-role: no user nobody@example.com\n",
    });
    expect(readdirSync(dataDir).filter((f) => f.startsWith("trellis.db"))).toContain("trellis.db");
  });
});
