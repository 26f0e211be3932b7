// trellis-server's commands. Each turns its arguments into the input of the
// admin function the console's route handler calls for the same action, and
// its answer into text (or, with --json, the API's JSON). Lookups by email
// or name are the shell's convenience; every rule is the admin function's.
import { open } from "node:fs/promises";
import { resolve } from "node:path";
import type { MachineInfo, Page, PreAuthKeyInfo, UserInfo } from "@trellis/proto";
import { createKey, listKeys, revokeKey } from "../admin/keys";
import {
  authorizeMachine,
  getMachine,
  listMachines,
  removeMachine,
  setMachineRoutes,
} from "../admin/machines";
import { getPolicy, savePolicyText, validatePolicyText } from "../admin/policy";
import { clearLoginThrottle, getUser, listUsers, removeUser, updateUser } from "../admin/users";
import { createWireGuardPeer, wireGuardPeerConfig } from "../admin/wireguard";
import { localOperator } from "../auth/actor";
import { createInvitation } from "../auth/invitations";
import { createApiTokenFor } from "../auth/tokens";
import { ControlError } from "../errors";
import { MAX_POLICY_BYTES } from "../policy-store";
import { canonicalPrefixes } from "../routes";
import { issueSetupToken } from "../setup";
import { UsageError, type CliContext, type CliIo } from "./context";

export interface Parsed {
  flags: Record<string, string | boolean | undefined>;
  args: string[];
}

export interface Result {
  /** What --json prints: the API's answer for the same action. */
  json: unknown;
  /** What is printed otherwise, on stdout (a secret alone on its line, for `$(…)`). */
  text: string;
  /** Said to the person on stderr (not with --json): how to use what was printed. */
  note?: string;
  exitCode?: number;
}

export interface Command {
  /** "users list", or "setup-link". */
  name: string;
  /** The arguments after the name, for usage lines. */
  synopsis: string;
  summary: string;
  /** More for --help. */
  details?: string;
  options?: Record<string, { type: "string" | "boolean" }>;
  /** Positional arguments' names; an optional one ends with "?". */
  args?: string[];
  run(ctx: CliContext, p: Parsed & { io: CliIo; cwd: string }): Promise<Result>;
  /** The refusal as this command's user reads it: flags and arguments named instead of API fields. */
  explain?(err: ControlError, p: Parsed): ControlError;
}

// --- Helpers ----------------------------------------------------------------------

/** A refusal whose first issue is about an API field, reworded to name the flag or argument given for it. */
function naming(fields: Record<string, string>) {
  return (err: ControlError): ControlError => {
    const first = err.issues?.[0];
    const flag = first && fields[first.path.split(".")[0]!];
    if (!first || !flag) return err;
    const more = err.issues!.length > 1 ? ` (and ${err.issues!.length - 1} more)` : "";
    return new ControlError(err.code, err.status, `${flag}: ${first.message}${more}`, err.issues);
  };
}

function str(p: Parsed, flag: string): string | undefined {
  const v = p.flags[flag];
  return typeof v === "string" ? v : undefined;
}

/** A flag's comma-separated list (empty items dropped). */
function list(p: Parsed, flag: string): string[] | undefined {
  const v = str(p, flag);
  return v === undefined
    ? undefined
    : v
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
}

/** A flag's whole number; the admin function checks its range. */
function whole(p: Parsed, flag: string): number | undefined {
  const v = str(p, flag);
  if (v === undefined) return undefined;
  if (!/^\d{1,9}$/.test(v)) throw new UsageError(`--${flag}: "${v}" is not a whole number`);
  return Number(v);
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** "90m", "1h", "7d" → seconds; the admin function checks the range. */
function duration(p: Parsed, flag: string): number | undefined {
  const v = str(p, flag);
  if (v === undefined) return undefined;
  const m = /^(\d{1,9})([smhd])$/.exec(v);
  if (!m) throw new UsageError(`--${flag}: "${v}" is not a duration such as 30m, 1h, 7d or 90d`);
  return Number(m[1]) * UNIT_SECONDS[m[2]!]!;
}

/** Rows under a header, columns padded to their widest cell. */
function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(head), ...rows.map(line)].join("\n");
}

/** "2030-01-31 12:00Z" */
function when(iso: string | null): string {
  return iso === null ? "-" : `${iso.slice(0, 16).replace("T", " ")}Z`;
}

function ago(iso: string | null, now = Date.now()): string {
  if (iso === null) return "never";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}

/** Every page of a list, in order. */
async function allPages<T>(fetch: (cursor: string | undefined) => Promise<Page<T>>): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | undefined;
  do {
    const page = await fetch(cursor);
    out.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
  return out;
}

/** A user by email (any case) or id. */
async function findUser(ctx: CliContext, text: string) {
  const user = text.includes("@")
    ? await ctx.db.prisma.user.findUnique({ where: { email: text.toLowerCase() } })
    : await ctx.db.prisma.user.findUnique({ where: { id: text } });
  if (!user) throw new ControlError("not_found", 404, `no user ${text}`);
  return user;
}

/** A machine by name (any case) or id. */
async function findMachine(ctx: CliContext, text: string) {
  const node =
    (await ctx.db.prisma.node.findUnique({ where: { name: text.toLowerCase() } })) ??
    (await ctx.db.prisma.node.findUnique({ where: { id: text } }));
  if (!node) throw new ControlError("not_found", 404, `no machine ${text} (give its name or id)`);
  return node;
}

/** A pre-auth key by id, or by its displayed prefix `trellis-auth-<12 hex>`. */
async function findKey(ctx: CliContext, text: string) {
  const m = /^trellis-auth-([0-9a-f]{12})(-|$)/.exec(text);
  const key = m
    ? await ctx.db.prisma.preAuthKey.findUnique({ where: { prefix: m[1]! } })
    : await ctx.db.prisma.preAuthKey.findUnique({ where: { id: text } });
  if (!key) throw new ControlError("not_found", 404, `no pre-auth key ${text}`);
  return key;
}

/**
 * A policy file's text, or standard input's for "-". Read up to one byte
 * past the policy size limit, so that a file too large is refused by the
 * admin function (with its message) without being read whole.
 */
async function readPolicy(source: string, io: CliIo, cwd: string): Promise<string> {
  const limit = MAX_POLICY_BYTES + 1;
  const chunks: Buffer[] = [];
  let size = 0;
  if (source === "-") {
    if (!io.stdin) throw new UsageError("no standard input to read the policy from");
    for await (const chunk of io.stdin) {
      const b = typeof chunk === "string" ? Buffer.from(chunk) : Buffer.from(chunk);
      chunks.push(b);
      size += b.length;
      if (size >= limit) break;
    }
    return Buffer.concat(chunks).subarray(0, limit).toString("utf8");
  }
  let file;
  try {
    file = await open(resolve(cwd, source), "r");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(
      `cannot read ${source}: ${code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : (err as Error).message}`,
    );
  }
  try {
    const buf = Buffer.alloc(limit);
    let got = 0;
    for (;;) {
      const { bytesRead } = await file.read(buf, got, limit - got, null);
      if (bytesRead === 0) break;
      got += bytesRead;
      if (got >= limit) break;
    }
    return buf.subarray(0, got).toString("utf8");
  } catch (err) {
    throw new UsageError(`cannot read ${source}: ${(err as Error).message}`);
  } finally {
    await file.close();
  }
}

function machineStatus(m: MachineInfo): string {
  if (!m.authorized) return "pending approval";
  if (m.expired) return "key expired";
  return m.online ? "online" : "offline";
}

function keyState(k: PreAuthKeyInfo, now = Date.now()): string {
  if (k.revokedAt !== null) return "revoked";
  if (Date.parse(k.expiresAt) <= now) return "expired";
  if (!k.reusable && k.usedCount > 0) return "used";
  return "valid";
}

const ROLE_WORD: Record<string, string> = { admin: "an admin", member: "a member", auditor: "an auditor" };

// --- Users ----------------------------------------------------------------------------

const usersList: Command = {
  name: "users list",
  synopsis: "[--role ROLE] [--search TEXT]",
  summary: "list users, their role and machines",
  details: "--role: admin, member or auditor. --search: part of an email or name.",
  options: { role: { type: "string" }, search: { type: "string" } },
  async run(ctx, p) {
    const items = await allPages<UserInfo>((cursor) =>
      listUsers(ctx, localOperator(), {
        limit: 200,
        ...(cursor ? { cursor } : {}),
        ...(str(p, "role") !== undefined ? { role: str(p, "role") } : {}),
        ...(str(p, "search") !== undefined ? { q: str(p, "search") } : {}),
      }),
    );
    return {
      json: { items },
      text: items.length
        ? table(
            ["EMAIL", "NAME", "ROLE", "LOGIN", "MACHINES", "ID"],
            items.map((u) => [u.email, u.name, u.role, u.login, String(u.machines), u.id]),
          )
        : "no users",
    };
  },
  explain: naming({ role: "--role", q: "--search" }),
};

const usersCreate: Command = {
  name: "users create",
  synopsis: "EMAIL [--role ROLE] [--expires-in-hours N]",
  summary: "invite someone: prints their one-time sign-up link",
  details: `As in the console, a local account is made by invitation: the link lets EMAIL
choose their own password (none passes through this shell) and works once.
--role: member (default), admin or auditor. --expires-in-hours: how long the
link works (default 72, at most 720). People who log in with single sign-on
need no invitation.`,
  options: { role: { type: "string" }, "expires-in-hours": { type: "string" } },
  args: ["EMAIL"],
  async run(ctx, p) {
    const hours = whole(p, "expires-in-hours");
    const { token, invitation } = await createInvitation(ctx, localOperator(), {
      email: p.args[0],
      ...(str(p, "role") !== undefined ? { role: str(p, "role") } : {}),
      ...(hours !== undefined ? { expiresInHours: hours } : {}),
    });
    const url = `${ctx.config.publicUrl}/invite#token=${token}`;
    return {
      json: { invitation, url },
      text: url,
      note: `Invited ${invitation.email} as ${ROLE_WORD[invitation.role]}. Send them the link above: it works once, until ${when(invitation.expiresAt)}.`,
    };
  },
  explain: naming({ email: "EMAIL", role: "--role", expiresInHours: "--expires-in-hours" }),
};

const usersSetRole: Command = {
  name: "users set-role",
  synopsis: "USER ROLE",
  summary: "make a user an admin, member or auditor",
  details: "The last admin cannot be made anything else. The change takes effect at once.",
  args: ["USER", "ROLE"],
  async run(ctx, p) {
    const user = await findUser(ctx, p.args[0]!);
    const info = await updateUser(ctx, localOperator(), user.id, { role: p.args[1] });
    return {
      json: info,
      text:
        user.role === info.role
          ? `${info.email} is already ${ROLE_WORD[info.role]}`
          : `${info.email} is now ${ROLE_WORD[info.role]} (was ${ROLE_WORD[user.role] ?? user.role})`,
    };
  },
  explain: naming({ role: "ROLE" }),
};

const usersRemove: Command = {
  name: "users remove",
  synopsis: "USER",
  summary: "remove a user with their machines, sessions and API tokens",
  details: `Pre-auth keys and invitations the user created are revoked. The last admin
cannot be removed.`,
  args: ["USER"],
  async run(ctx, p) {
    const user = await findUser(ctx, p.args[0]!);
    const before = await getUser(ctx, localOperator(), user.id);
    await removeUser(ctx, localOperator(), user.id);
    return {
      json: { removed: before },
      text: `removed ${before.email}${before.machines ? ` and ${before.machines} machine${before.machines === 1 ? "" : "s"}` : ""}`,
    };
  },
};

const usersUnthrottle: Command = {
  name: "users unthrottle",
  synopsis: "USER",
  summary: "let a user sign in again at once after failed passwords",
  details: `Forgets the failed sign-ins counted against the account, from every address
(the console's Clear on the Users page). Failures an address made across many
accounts stay counted.`,
  args: ["USER"],
  async run(ctx, p) {
    const user = await findUser(ctx, p.args[0]!);
    const before = await getUser(ctx, localOperator(), user.id);
    const after = await clearLoginThrottle(ctx, localOperator(), user.id);
    return {
      json: after,
      text: before.loginThrottle
        ? `${after.email} may sign in again at once (was held back until ${before.loginThrottle.until})`
        : `${after.email} was not held back`,
    };
  },
};

// --- Pre-auth keys --------------------------------------------------------------------

const keysList: Command = {
  name: "keys list",
  synopsis: "",
  summary: "list pre-auth keys (never the keys themselves)",
  async run(ctx) {
    const items = await listKeys(ctx, localOperator());
    const owners = new Map(
      (
        await ctx.db.prisma.user.findMany({
          where: { id: { in: items.flatMap((k) => (k.userId ? [k.userId] : [])) } },
          select: { id: true, email: true },
        })
      ).map((u) => [u.id, u.email]),
    );
    return {
      json: { items },
      text: items.length
        ? table(
            ["ID", "KEY", "FOR", "TYPE", "USED", "EXPIRES", "STATE"],
            items.map((k) => [
              k.id,
              `${k.prefix}-…`,
              k.tags.length ? k.tags.join(",") : (owners.get(k.userId ?? "") ?? k.userId ?? "-"),
              [k.reusable ? "reusable" : "single-use", ...(k.ephemeral ? ["ephemeral"] : [])].join(","),
              String(k.usedCount),
              when(k.expiresAt),
              keyState(k),
            ]),
          )
        : "no pre-auth keys",
    };
  },
};

const keysCreate: Command = {
  name: "keys create",
  synopsis: "(--user USER | --tags TAG,…) [--reusable] [--ephemeral] [--expiry D] [--description TEXT]",
  summary: "make a pre-auth key for `trellis up`; printed once",
  details: `An untagged key registers machines owned by --user; a tagged key registers
machines with --tags (the policy's tagOwners must define them) and no owner.
--reusable: registers any number of machines until it expires (otherwise
once). --ephemeral: its machines are removed soon after they go offline.
--expiry: how long the key works, e.g. 1h, 7d (default 1d, as the console;
at most 90d). The key alone is printed on stdout; only its hash is stored.`,
  options: {
    user: { type: "string" },
    tags: { type: "string" },
    reusable: { type: "boolean" },
    ephemeral: { type: "boolean" },
    expiry: { type: "string" },
    description: { type: "string" },
  },
  async run(ctx, p) {
    const seconds = duration(p, "expiry") ?? 24 * 3600;
    const userText = str(p, "user");
    const user = userText !== undefined ? await findUser(ctx, userText) : null;
    const { key, info } = await createKey(ctx, localOperator(), {
      reusable: p.flags.reusable === true,
      ephemeral: p.flags.ephemeral === true,
      tags: list(p, "tags") ?? [],
      ...(user ? { userId: user.id } : {}),
      expiresInSeconds: seconds,
      ...(str(p, "description") !== undefined ? { description: str(p, "description") } : {}),
    });
    return {
      json: { key, info },
      text: key,
      note: `This key is shown once (until ${when(info.expiresAt)}, ${info.reusable ? "reusable" : "single use"}). On the machine, run:\n  trellis up --login-server ${ctx.config.publicUrl} --auth-key ${key}`,
    };
  },
  explain: naming({
    tags: "--tags",
    userId: "--user",
    expiresInSeconds: "--expiry",
    description: "--description",
  }),
};

const keysRevoke: Command = {
  name: "keys revoke",
  synopsis: "KEY",
  summary: "revoke a pre-auth key (machines it registered stay)",
  details: "KEY is the key's id or its prefix as listed (trellis-auth-<12 hex digits>).",
  args: ["KEY"],
  async run(ctx, p) {
    const key = await findKey(ctx, p.args[0]!);
    const info = await revokeKey(ctx, localOperator(), key.id);
    return {
      json: info,
      text: key.revokedAt ? `${info.prefix} was already revoked` : `revoked ${info.prefix}`,
    };
  },
};

// --- Machines ---------------------------------------------------------------------------

const machinesList: Command = {
  name: "machines list",
  synopsis: "[--status S] [--user USER] [--tag TAG] [--search TEXT]",
  summary: "list machines, their addresses, owners and state",
  details: `--status: online, offline, pending (awaiting approval) or expired.
--search: part of a name, hostname, address, owner's email or tag.`,
  options: {
    status: { type: "string" },
    user: { type: "string" },
    tag: { type: "string" },
    search: { type: "string" },
  },
  async run(ctx, p) {
    const userText = str(p, "user");
    const user = userText !== undefined ? await findUser(ctx, userText) : null;
    const items = await allPages<MachineInfo>((cursor) =>
      listMachines(ctx, localOperator(), {
        limit: 200,
        ...(cursor ? { cursor } : {}),
        ...(str(p, "status") !== undefined ? { status: str(p, "status") } : {}),
        ...(user ? { userId: user.id } : {}),
        ...(str(p, "tag") !== undefined ? { tag: str(p, "tag") } : {}),
        ...(str(p, "search") !== undefined ? { q: str(p, "search") } : {}),
      }),
    );
    const now = Date.now();
    return {
      json: { items },
      text: items.length
        ? table(
            ["NAME", "ADDRESS", "OWNER", "STATUS", "LAST SEEN", "ID"],
            items.map((m) => [
              m.name,
              m.ipv4 ?? "-",
              m.tags.length ? m.tags.join(",") : (m.user?.email ?? "-"),
              machineStatus(m),
              m.online ? "now" : ago(m.lastSeen, now),
              m.id,
            ]),
          )
        : "no machines",
    };
  },
  explain: naming({ status: "--status", tag: "--tag", q: "--search" }),
};

/**
 * Approve routes by replacing the approved set with `next` (setMachineRoutes
 * decides what may be approved), naming the flag and route it refuses.
 */
async function approveRoutes(ctx: CliContext, id: string, next: string[], flag: string) {
  try {
    return await setMachineRoutes(ctx, localOperator(), id, { routes: next });
  } catch (err) {
    const known = ControlError.of(err);
    const i = Number(/^routes\.(\d+)$/.exec(known?.issues?.[0]?.path ?? "")?.[1] ?? NaN);
    if (!known || Number.isNaN(i) || next[i] === undefined) throw err;
    const message = known.issues![0]!.message;
    throw new ControlError(
      known.code,
      known.status,
      message.includes(next[i]) ? `${flag}: ${message}` : `${flag}: "${next[i]}": ${message}`,
      known.issues,
    );
  }
}

const machinesApprove: Command = {
  name: "machines approve",
  synopsis: "MACHINE [--routes CIDR,…]",
  summary: "approve a machine awaiting approval (and, with --routes, routes it advertises)",
  details: `With node approval on (the console's Settings), new machines wait for an
admin. --routes also approves those of its advertised routes (as
machines routes --approve); an exit node is 0.0.0.0/0,::/0.`,
  options: { routes: { type: "string" } },
  args: ["MACHINE"],
  async run(ctx, p) {
    const node = await findMachine(ctx, p.args[0]!);
    const routes = list(p, "routes");
    // Routes first: a route refused leaves the machine as it was.
    if (routes?.length) {
      const { approvedRoutes } = await getMachine(ctx, localOperator(), node.id);
      await approveRoutes(ctx, node.id, [...approvedRoutes, ...routes], "--routes");
    }
    const info = await authorizeMachine(ctx, localOperator(), node.id);
    const lines = [node.authorized ? `${info.name} was already approved` : `approved ${info.name}`];
    if (routes?.length) lines.push(`approved routes: ${info.approvedRoutes.join(", ") || "none"}`);
    return { json: info, text: lines.join("\n") };
  },
};

const machinesRoutes: Command = {
  name: "machines routes",
  synopsis: "MACHINE [--approve CIDR,…] [--unapprove CIDR,…]",
  summary: "show a machine's advertised and approved routes; approve or unapprove some",
  details: `Only routes the machine advertises can be approved, as canonical prefixes
(10.1.0.0/16, not 10.1.2.3/16), as in the console. An exit node is the pair
0.0.0.0/0,::/0. Without flags, shows the routes.`,
  options: { approve: { type: "string" }, unapprove: { type: "string" } },
  args: ["MACHINE"],
  async run(ctx, p) {
    const node = await findMachine(ctx, p.args[0]!);
    const approve = list(p, "approve") ?? [];
    const unapproveText = list(p, "unapprove") ?? [];
    let info = await getMachine(ctx, localOperator(), node.id);
    if (approve.length || unapproveText.length) {
      const unapprove = canonicalPrefixes(unapproveText, "--unapprove");
      const notApproved = unapprove.filter((r) => !info.approvedRoutes.includes(r));
      if (notApproved.length) {
        throw new ControlError(
          "invalid_request",
          400,
          `--unapprove: ${info.name} has no approved route ${notApproved.join(", ")}`,
        );
      }
      const kept = info.approvedRoutes.filter((r) => !unapprove.includes(r));
      info = await approveRoutes(ctx, node.id, [...kept, ...approve], "--approve");
    }
    const all = [...new Set([...info.advertisedRoutes, ...info.approvedRoutes])];
    return {
      json: info,
      text: all.length
        ? table(
            ["ROUTE", "ADVERTISED", "APPROVED"],
            all.map((r) => [
              r,
              info.advertisedRoutes.includes(r) ? "yes" : "no",
              info.approvedRoutes.includes(r) ? "yes" : "no",
            ]),
          )
        : `${info.name} advertises no routes`,
    };
  },
};

const machinesAddWireguard: Command = {
  name: "machines add-wireguard",
  synopsis: "NAME --gateway MACHINE --public-key KEY (--user USER | --tags TAG,…)",
  summary: "add a plain WireGuard peer (wg-quick, wireguard-go) that goes through a gateway",
  details: `--public-key: the peer's key as \`wg pubkey\` prints it (the private key stays
on the peer). --gateway: a machine that published a UDP endpoint (a
\`trellis up\` gateway). The peer is owned by --user, or by --tags (the
policy's tagOwners must define them), and reaches what the policy allows
through the gateway. Then \`machines wireguard-config NAME\` prints its file.`,
  options: {
    gateway: { type: "string" },
    "public-key": { type: "string" },
    user: { type: "string" },
    tags: { type: "string" },
  },
  args: ["NAME"],
  async run(ctx, p) {
    const gatewayText = str(p, "gateway");
    if (gatewayText === undefined) throw new UsageError("--gateway is required");
    const userText = str(p, "user");
    const tags = list(p, "tags");
    if (userText === undefined && !tags?.length)
      throw new UsageError("give --user or --tags: who owns the peer");
    const gateway = await findMachine(ctx, gatewayText);
    const user = userText !== undefined ? await findUser(ctx, userText) : null;
    const info = await createWireGuardPeer(ctx, localOperator(), {
      name: p.args[0]!,
      gatewayId: gateway.id,
      publicKey: str(p, "public-key") ?? "",
      ...(tags?.length ? { tags } : {}),
      ...(user ? { userId: user.id } : {}),
    });
    return {
      json: info,
      text: `added ${info.name} (${info.ipv4}) through ${gateway.name}`,
      note: `Its wg-quick file: trellis-server machines wireguard-config ${info.name}`,
    };
  },
  explain: naming({
    name: "NAME",
    gatewayId: "--gateway",
    publicKey: "--public-key",
    tags: "--tags",
    userId: "--user",
  }),
};

const machinesWireguardConfig: Command = {
  name: "machines wireguard-config",
  synopsis: "MACHINE [--endpoint HOST:PORT]",
  summary: "print a plain WireGuard peer's wg-quick file (without its private key)",
  details: `The file names the first UDP endpoint its gateway published, or --endpoint
(one the peer can reach: the gateway's public address for a peer on the
internet). Put the peer's private key in its PrivateKey line.`,
  options: { endpoint: { type: "string" } },
  args: ["MACHINE"],
  async run(ctx, p) {
    const node = await findMachine(ctx, p.args[0]!);
    const endpoint = str(p, "endpoint");
    const conf = await wireGuardPeerConfig(
      ctx,
      localOperator(),
      node.id,
      endpoint !== undefined ? { endpoint } : {},
    );
    return { json: conf, text: conf.config.replace(/\n$/, "") };
  },
  explain: naming({ endpoint: "--endpoint" }),
};

const machinesRemove: Command = {
  name: "machines remove",
  synopsis: "MACHINE",
  summary: "remove a machine (its addresses are never handed out again)",
  args: ["MACHINE"],
  async run(ctx, p) {
    const node = await findMachine(ctx, p.args[0]!);
    const before = await getMachine(ctx, localOperator(), node.id);
    await removeMachine(ctx, localOperator(), node.id);
    return { json: { removed: before }, text: `removed ${before.name}` };
  },
};

// --- Policy -----------------------------------------------------------------------------

const policyGet: Command = {
  name: "policy get",
  synopsis: "",
  summary: "print the policy in force (HuJSON)",
  async run(ctx) {
    const policy = await getPolicy(ctx, localOperator());
    return { json: policy, text: policy.text };
  },
};

const policySet: Command = {
  name: "policy set",
  synopsis: "FILE|- [--base-version N]",
  summary: "validate, test and save a policy from FILE or standard input",
  details: `Exactly as the console's save: the policy is refused, with every problem at
its line:column, when it does not parse, means nothing valid, or its tests
fail against the tailnet as it is now. --base-version N refuses the save when
another version was saved after N (policy get --json shows the version).`,
  options: { "base-version": { type: "string" } },
  args: ["FILE"],
  async run(ctx, p) {
    const base = whole(p, "base-version");
    const text = await readPolicy(p.args[0]!, p.io, p.cwd);
    const saved = await savePolicyText(ctx, localOperator(), {
      text,
      ...(base !== undefined ? { baseVersion: base } : {}),
    });
    return { json: saved, text: `saved policy version ${saved.version}` };
  },
  explain: naming({ text: "FILE", baseVersion: "--base-version" }),
};

const policyCheck: Command = {
  name: "policy check",
  synopsis: "FILE|-",
  summary: "validate and test a policy without saving it",
  details: `The console's check: parsed, validated and its tests run against the tailnet
as it is now; problems at line:column on stderr, exit code 1. With --json,
the API's answer on stdout: {"ok":true} or {"ok":false,"message","issues"}.`,
  args: ["FILE"],
  async run(ctx, p) {
    const text = await readPolicy(p.args[0]!, p.io, p.cwd);
    const result = await validatePolicyText(ctx, localOperator(), text);
    if (result.ok) return { json: result, text: "ok: the policy is valid and its tests pass" };
    return {
      json: result,
      text: "",
      note: result.message
        .split("\n")
        .map((line) => `trellis-server policy check: ${line}`)
        .join("\n"),
      exitCode: 1,
    };
  },
};

// --- API tokens and setup ---------------------------------------------------------------

const tokensCreate: Command = {
  name: "tokens create",
  synopsis: "--user USER --scopes SCOPE,… [--expires-in-days N] [--description TEXT]",
  summary: "make an API token acting as USER; printed once",
  details: `As one USER makes under Settings: it acts as USER within --scopes, which
USER's role must hold (machines:read, machines:write, users:read, users:write,
keys:read, keys:write, policy:read, policy:write, dns:read, dns:write,
settings:read, settings:write, logs:read). --expires-in-days: default 90, at
most 365. Use it as "Authorization: Bearer <token>" (docs/api.md).`,
  options: {
    user: { type: "string" },
    scopes: { type: "string" },
    "expires-in-days": { type: "string" },
    description: { type: "string" },
  },
  async run(ctx, p) {
    const userText = str(p, "user");
    if (userText === undefined) throw new UsageError("--user is required: the token acts as that user");
    const days = whole(p, "expires-in-days");
    const user = await findUser(ctx, userText);
    const { token, info } = await createApiTokenFor(ctx, localOperator(), user.id, {
      scopes: list(p, "scopes") ?? [],
      ...(days !== undefined ? { expiresInDays: days } : {}),
      ...(str(p, "description") !== undefined ? { description: str(p, "description") } : {}),
    });
    return {
      json: { token, info },
      text: token,
      note: `This token is shown once. It acts as ${user.email} with ${info.scopes.join(", ")} until ${when(info.expiresAt)}.`,
    };
  },
  explain: naming({
    scopes: "--scopes",
    expiresInDays: "--expires-in-days",
    description: "--description",
  }),
};

const setupLink: Command = {
  name: "setup-link",
  synopsis: "",
  summary: "mint a new first-run setup link (while no admin exists)",
  details: `The link creates the first admin, once. It replaces every setup link made
before, the one the server printed at its start included.`,
  async run(ctx) {
    const token = await issueSetupToken(ctx.db, "local");
    if (token === null) {
      throw new ControlError(
        "setup_complete",
        409,
        `setup is already complete: an admin exists (log in at ${ctx.config.publicUrl}/login; users create invites more people)`,
      );
    }
    const url = `${ctx.config.publicUrl}/setup#token=${token}`;
    return {
      json: { url },
      text: url,
      note: "Open it to create the first admin. It works once, and replaces any setup link printed before.",
    };
  },
};

export const COMMANDS: Command[] = [
  usersList,
  usersCreate,
  usersSetRole,
  usersRemove,
  usersUnthrottle,
  keysList,
  keysCreate,
  keysRevoke,
  machinesList,
  machinesApprove,
  machinesRoutes,
  machinesRemove,
  machinesAddWireguard,
  machinesWireguardConfig,
  policyGet,
  policySet,
  policyCheck,
  tokensCreate,
  setupLink,
];

/** First words of two-word commands. */
export const GROUPS = [
  ...new Set(COMMANDS.filter((c) => c.name.includes(" ")).map((c) => c.name.split(" ")[0]!)),
];
