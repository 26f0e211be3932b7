// `GET /api/v1/map` served straight on node:http. The server process routes
// it here before Next.js (as it does the relay's paths): a map stream lives as
// long as its node is connected, and at 10,000 nodes what each one holds and
// what each event costs on its way out is the control plane's memory and its
// policy-change latency. Through a route handler, every stream carried a web
// ReadableStream, its reader and an AbortSignal (~5 kB of heap) and every
// event a promise round trip; here the events go to the socket as they are
// made. See docs/decisions.md.
import type { IncomingMessage, ServerResponse } from "node:http";
import { NODE_AUTH_SCHEME, type ApiError } from "@trellis/proto";
import { ControlError } from "./errors";
import type { MapSink } from "./map-stream";
import type { ControlRuntime } from "./runtime";

export const MAP_PATH = "/api/v1/map";

const STREAM_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-store, no-transform",
  // Reverse proxies (nginx) must not buffer the stream.
  "x-accel-buffering": "no",
};

/** True for a request `serveMapStream` answers: any method on the map's path (others get a 405). */
export function isMapRequest(req: IncomingMessage): boolean {
  const url = req.url ?? "";
  const q = url.indexOf("?");
  return (q < 0 ? url : url.slice(0, q)) === MAP_PATH;
}

function sendError(res: ServerResponse, status: number, body: ApiError, extra: Record<string, string> = {}) {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "cache-control": "no-store",
    ...extra,
  };
  // Name the scheme a 401 expects (RFC 9110 §11.6.1): node signatures.
  if (status === 401) headers["www-authenticate"] = NODE_AUTH_SCHEME;
  res.writeHead(status, headers).end(JSON.stringify(body));
}

/**
 * Answer a map request: authenticate the signed request, then stream the
 * node's map until either side ends it. Errors before the stream starts are
 * the API's JSON errors (401 for a bad signature or an unknown node, 403…).
 */
export async function serveMapStream(rt: ControlRuntime, req: IncomingMessage, res: ServerResponse) {
  if (req.method !== "GET") {
    sendError(
      res,
      405,
      { error: "method_not_allowed", message: `${MAP_PATH} answers GET only` },
      { allow: "GET" },
    );
    return;
  }
  let gone = false;
  let stop: (() => void) | null = null;
  res.on("close", () => {
    gone = true;
    stop?.();
  });
  const sink: MapSink = {
    write(bytes) {
      if (!res.headersSent) res.writeHead(200, STREAM_HEADERS);
      res.write(bytes);
    },
    // Bytes in the response and its socket not yet handed to the kernel.
    queued: () => res.writableLength,
    gone: () => gone,
    end(abort) {
      // Before the first byte, the stream ended on an error that is answered below.
      if (!res.headersSent || gone) return;
      // A client that stopped reading would keep the socket and what waits for it: drop both.
      if (abort) res.destroy();
      else res.end();
    },
  };
  try {
    stop = await rt.startMapStream(
      {
        method: "GET",
        path: req.url ?? MAP_PATH,
        authorization: req.headers.authorization ?? null,
        body: "",
      },
      sink,
    );
    // Gone between the stream's start and here.
    if (gone) stop();
  } catch (err) {
    if (res.headersSent || gone) {
      res.destroy();
      return;
    }
    if (ControlError.is(err)) {
      sendError(res, err.status, { error: err.code, message: err.message, issues: err.issues });
      return;
    }
    rt.log.error({ err, route: `GET ${MAP_PATH}` }, "request failed");
    sendError(res, 500, { error: "internal", message: "internal server error" });
  }
}
