// How a login throttle's wait is put in words, the same by the server and
// on the login page. Bundle-safe.

/** A wait in plain words, rounded up: "1 second", "40 seconds", "3 minutes", "1 hour 5 minutes". */
export function waitWords(ms: number): string {
  const s = Math.max(1, Math.ceil(ms / 1000));
  const unit = (n: number, one: string) => `${n} ${one}${n === 1 ? "" : "s"}`;
  if (s < 60) return unit(s, "second");
  if (s < 3600) return unit(Math.ceil(s / 60), "minute");
  const h = Math.floor(s / 3600);
  const m = Math.ceil((s % 3600) / 60);
  return m ? `${unit(h, "hour")} ${unit(m, "minute")}` : unit(h, "hour");
}
