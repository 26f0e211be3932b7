"use client";

import { useRouter } from "next/navigation";
import { useEffect } from "react";

/**
 * Follows the tailnet's change feed (`event: change` on /api/v1/events) and
 * re-renders the page's server components, debounced, so online state, new
 * machines and policy saves by others show up without a reload.
 */
export function LiveRefresh({ debounceMs = 300 }: { debounceMs?: number }) {
  const router = useRouter();

  useEffect(() => {
    if (typeof EventSource === "undefined") return;
    let timer: ReturnType<typeof setTimeout> | null = null;
    const es = new EventSource("/api/v1/events");
    const onChange = () => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        timer = null;
        router.refresh();
      }, debounceMs);
    };
    es.addEventListener("change", onChange);
    return () => {
      if (timer) clearTimeout(timer);
      es.removeEventListener("change", onChange);
      es.close();
    };
  }, [router, debounceMs]);

  return null;
}
