import { formatDate, relativeTime } from "./format";

/** A relative time ("5 min ago") with the exact time as tooltip; render in server components. */
export function Time({ iso, fallback = "never" }: { iso: string | null | undefined; fallback?: string }) {
  if (!iso) return <span className="muted">{fallback}</span>;
  return (
    <time dateTime={iso} title={formatDate(iso)}>
      {relativeTime(iso)}
    </time>
  );
}
