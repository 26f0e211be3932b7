import { SSE_HEADERS, SSE_HEARTBEAT, sseText } from "@trellis/control/http";
import { ControlError } from "@trellis/control/errors";
import { adminRoute, getRuntime } from "@/lib/api";
import { eventStreamSlots, MAX_STREAMS_PER_USER } from "@/lib/stream-slots";

export const dynamic = "force-dynamic";

const HEARTBEAT_MS = 25_000;
const COALESCE_MS = 250;

/**
 * Live updates for the console: `event: change` with `{"type": …}` whenever
 * machines, the policy or settings change (here or on another replica).
 * Carries no data — pages re-read what they show, with the viewer's rights.
 */
export function GET(req: Request): Promise<Response> {
  return adminRoute("GET /api/v1/events", req, async (actor) => {
    const rt = getRuntime();
    const release = eventStreamSlots().acquire(actor.userId);
    if (!release) {
      throw new ControlError(
        "too_many_streams",
        429,
        `at most ${MAX_STREAMS_PER_USER} console event streams per user; close some tabs`,
      );
    }
    const enc = new TextEncoder();
    let cleanup = () => {};
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        const pending = new Set<string>();
        let timer: ReturnType<typeof setTimeout> | null = null;
        const send = (text: string) => {
          try {
            controller.enqueue(enc.encode(text));
          } catch {
            cleanup();
          }
        };
        const flush = () => {
          timer = null;
          for (const type of pending) send(sseText("change", JSON.stringify({ type })));
          pending.clear();
        };
        const unsubscribe = rt.events.subscribe((e) => {
          if (e.type === "signal") return;
          pending.add(e.type);
          timer ??= setTimeout(flush, COALESCE_MS);
        });
        const heartbeat = setInterval(() => send(SSE_HEARTBEAT), HEARTBEAT_MS);
        cleanup = () => {
          release();
          unsubscribe();
          clearInterval(heartbeat);
          if (timer) clearTimeout(timer);
          try {
            controller.close();
          } catch {
            // already closed by the client going away
          }
        };
        req.signal.addEventListener("abort", () => cleanup(), { once: true });
        if (req.signal.aborted) cleanup(); // gone before we listened: give the slot back now
        send(": connected\n\n");
      },
      cancel() {
        cleanup();
      },
    });
    return new Response(stream, { headers: SSE_HEADERS });
  });
}
