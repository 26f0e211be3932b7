// Tailnet-wide settings (name, node approval, key expiry, browser machines
// ephemeral or persistent, relay map override)
// and DNS settings (MagicDNS, suffix, nameservers, search domains), stored as
// JSON in the Setting table under "tailnet" and "dns". Absent or unreadable
// rows mean the defaults, some of which come from the server's configuration
// (the DNS suffix from TRELLIS_DNS_DOMAIN).
//
// Every change is audited (before/after, in the same transaction) and
// announced as a `settings` event: the runtime drops its cached copy (on every
// replica, through the PostgreSQL bridge) and every map stream recomputes,
// since DNS and the relay map are part of every map.
import type { Database } from "@trellis/db";
import { DnsSettings, TailnetSettings } from "@trellis/proto";
import type { z } from "zod";
import type { AdminContext } from "./admin/context";
import { requireScope, type Actor } from "./auth/actor";
import type { ServerConfig } from "./config";
import { ControlError } from "./errors";
import { parseOr400 } from "./errors-util";
import { audit, actorRef, type AuditAction } from "./audit";
import { recordChange } from "./outbox";

export const TAILNET_SETTINGS_KEY = "tailnet";
export const DNS_SETTINGS_KEY = "dns";

export interface Settings {
  tailnet: TailnetSettings;
  dns: DnsSettings;
}

export function defaultTailnetSettings(): TailnetSettings {
  return {
    name: "My tailnet",
    nodeApproval: false,
    keyExpiryDays: 180,
    persistentBrowserNodes: false,
    relayMap: null,
  };
}

export function defaultDnsSettings(dnsDomain: string): DnsSettings {
  return { magicDns: true, domain: dnsDomain, nameservers: [], searchDomains: [] };
}

/** A stored value over the defaults; the defaults when the row is missing or no longer valid. */
function fromRow<S extends z.ZodType>(
  schema: S,
  text: string | undefined,
  defaults: z.output<S>,
): z.output<S> {
  if (text === undefined) return defaults;
  try {
    const stored: unknown = JSON.parse(text);
    if (typeof stored !== "object" || stored === null || Array.isArray(stored)) return defaults;
    const parsed = schema.safeParse({ ...(defaults as object), ...stored });
    return parsed.success ? parsed.data : defaults;
  } catch {
    return defaults;
  }
}

/** The settings in force (the runtime caches them until a `settings` event). */
export async function loadSettings(db: Database, config: Pick<ServerConfig, "dnsDomain">): Promise<Settings> {
  const rows = await db.prisma.setting.findMany({
    where: { key: { in: [TAILNET_SETTINGS_KEY, DNS_SETTINGS_KEY] } },
  });
  const value = (key: string) => rows.find((r) => r.key === key)?.value;
  return {
    tailnet: fromRow(TailnetSettings, value(TAILNET_SETTINGS_KEY), defaultTailnetSettings()),
    dns: fromRow(DnsSettings, value(DNS_SETTINGS_KEY), defaultDnsSettings(config.dnsDomain)),
  };
}

type Tx = Parameters<Parameters<Database["prisma"]["$transaction"]>[0]>[0];

/** The tailnet settings stored (or the defaults), read inside `db`'s transaction if it is one. */
export async function readTailnet(db: Tx | Database["prisma"]): Promise<TailnetSettings> {
  const row = await db.setting.findUnique({ where: { key: TAILNET_SETTINGS_KEY } });
  return fromRow(TailnetSettings, row?.value, defaultTailnetSettings());
}

/**
 * DNS settings; without a stored row the defaults use the context's DNS
 * suffix, which is then the configured one (TRELLIS_DNS_DOMAIN).
 */
async function readDns(
  db: Tx | Database["prisma"],
  defaultDomain: () => Promise<string>,
): Promise<DnsSettings> {
  const row = await db.setting.findUnique({ where: { key: DNS_SETTINGS_KEY } });
  if (!row) return defaultDnsSettings(await defaultDomain());
  return fromRow(DnsSettings, row.value, defaultDnsSettings(await defaultDomain()));
}

/**
 * Apply a partial update: only the fields present in `body` change; the
 * result is validated whole. Unknown fields are refused (400).
 */
function merge<S extends z.ZodObject>(
  schema: S,
  current: z.output<S>,
  body: unknown,
  what: string,
): z.output<S> {
  const partial = parseOr400(schema.partial(), body, what) as Record<string, unknown>;
  const next: Record<string, unknown> = { ...(current as Record<string, unknown>) };
  for (const k of Object.keys(body as object)) next[k] = partial[k];
  return parseOr400(schema, next, what);
}

async function save(
  ctx: AdminContext,
  actor: Actor,
  key: string,
  action: AuditAction,
  read: (tx: Tx) => Promise<unknown>,
  compute: (before: never) => unknown,
): Promise<unknown> {
  const result = await ctx.db.prisma.$transaction(async (tx) => {
    const before = await read(tx);
    const after = compute(before as never);
    if (JSON.stringify(before) === JSON.stringify(after)) return { after, change: null };
    const value = JSON.stringify(after);
    await tx.setting.upsert({ where: { key }, create: { key, value }, update: { value } });
    await audit(tx, {
      actor: actorRef(actor),
      action: action,
      target: `settings:${key}`,
      detail: { before, after },
    });
    return { after, change: await recordChange(ctx.db, tx, { type: "settings" }) };
  });
  if (result.change) {
    ctx.log.info({ actor: actor.userId, key }, "settings changed");
    ctx.events.publish(result.change);
  }
  return result.after;
}

// --- Admin functions --------------------------------------------------------------

/** The tailnet's name: shown to everyone logged in, whatever their scopes (it says where they are). */
export async function tailnetName(ctx: AdminContext): Promise<string> {
  return (await readTailnet(ctx.db.prisma)).name;
}

export async function getTailnetSettings(ctx: AdminContext, actor: Actor): Promise<TailnetSettings> {
  requireScope(actor, "settings:read");
  return readTailnet(ctx.db.prisma);
}

/** Change some tailnet settings (absent fields keep their value); returns them all. */
export async function updateTailnetSettings(
  ctx: AdminContext,
  actor: Actor,
  body: unknown,
): Promise<TailnetSettings> {
  requireScope(actor, "settings:write");
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ControlError("invalid_request", 400, "tailnet settings: expected an object");
  }
  // Parse outside the transaction, so a bad body costs no database work.
  merge(TailnetSettings, defaultTailnetSettings(), body, "invalid tailnet settings");
  return (await save(
    ctx,
    actor,
    TAILNET_SETTINGS_KEY,
    "settings.update",
    readTailnet,
    (before: TailnetSettings) => {
      const next = merge(TailnetSettings, before, body, "invalid tailnet settings");
      if (next.relayMap && Object.keys(next.relayMap.regions).length === 0) {
        throw new ControlError("invalid_request", 400, "relayMap: needs at least one region", [
          { path: "relayMap.regions", message: "needs at least one region" },
        ]);
      }
      return next;
    },
  )) as TailnetSettings;
}

export async function getDnsSettings(ctx: AdminContext, actor: Actor): Promise<DnsSettings> {
  requireScope(actor, "dns:read");
  return readDns(ctx.db.prisma, () => ctx.dnsDomain());
}

/** Change some DNS settings (absent fields keep their value); returns them all. */
export async function updateDnsSettings(
  ctx: AdminContext,
  actor: Actor,
  body: unknown,
): Promise<DnsSettings> {
  requireScope(actor, "dns:write");
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ControlError("invalid_request", 400, "DNS settings: expected an object");
  }
  const defaultDomain = await ctx.dnsDomain();
  merge(DnsSettings, defaultDnsSettings(defaultDomain), body, "invalid DNS settings");
  return (await save(
    ctx,
    actor,
    DNS_SETTINGS_KEY,
    "dns.update",
    (tx) => readDns(tx, () => Promise.resolve(defaultDomain)),
    (before: DnsSettings) => merge(DnsSettings, before, body, "invalid DNS settings"),
  )) as DnsSettings;
}
