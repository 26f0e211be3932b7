// Display helpers shared by server and client components. Pure functions:
// server components pass `now` implicitly; client components should render
// times they received pre-formatted to avoid hydration mismatches.

/** "5 min ago", "3 hours ago", "in 179 days", "2 years ago", "just now". */
export function relativeTime(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "never";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "unknown";
  const diff = Math.round((t - now) / 1000);
  const abs = Math.abs(diff);
  if (abs < 45) return "just now";
  let label: string;
  if (abs < 3600) label = `${Math.max(1, Math.round(abs / 60))} min`;
  else if (abs < 24 * 3600) label = plural(Math.round(abs / 3600), "hour");
  else if (abs < 365 * 24 * 3600) label = plural(Math.round(abs / 86400), "day");
  else label = plural(Math.round(abs / (365 * 86400)), "year");
  return diff < 0 ? `${label} ago` : `in ${label}`;
}

/** "2024-05-01 14:03 UTC": stable on server and client. */
export function formatDate(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

const PROTOS: Record<number, string> = { 1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 132: "SCTP" };

export function protoName(n: number): string {
  return PROTOS[n] ?? `proto ${n}`;
}

/** The default routes that make a machine an exit node. */
export const EXIT_ROUTES = ["0.0.0.0/0", "::/0"] as const;

export function isExitRoute(cidr: string): boolean {
  return cidr === "0.0.0.0/0" || cidr === "::/0";
}

/** Search params of a page as the control library's query record (only strings, no empties). */
export function queryRecord(
  params: Record<string, string | string[] | undefined>,
  keys: readonly string[],
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of keys) {
    const v = params[k];
    const s = Array.isArray(v) ? v[0] : v;
    if (s !== undefined && s !== "") out[k] = s;
  }
  return out;
}

export function firstParam(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** A URL for `path` with `params` (empty values dropped). */
export function hrefWith(path: string, params: Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/**
 * An audit action as the console names it: the server's vocabulary says
 * "node" (control/src/audit.ts), people see "machine".
 */
export function actionLabel(action: string): string {
  return action.startsWith("node.") ? `machine.${action.slice("node.".length)}` : action;
}

/** The server's action (or action prefix) for one typed in the console's words. */
export function actionQuery(text: string): string {
  return text.startsWith("machine.") ? `node.${text.slice("machine.".length)}` : text;
}
