// `GET /api/v1/map` served straight on node:http (the node API's router hands
// it here). A map stream lives as long as its node is connected, and at
// 10,000 nodes what each one holds and what each event costs on its way out
// is the control plane's memory and its policy-change latency: through a
// web ReadableStream every stream carried the stream, its reader and an
// AbortSignal (~5 kB of heap) and every event a promise round trip; here the
// events go to the socket as they are made. See docs/decisions.md.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { MapSink } from "../map-stream";
import type { ControlRuntime } from "../runtime";
import { errorReply, errorReplyOf } from "./errors";
import { SSE_HEADERS } from "./sse";

export const MAP_PATH = "/api/v1/map";

function send(res: ServerResponse, r: ReturnType<typeof errorReplyOf>) {
  res.writeHead(r.status, r.headers).end(JSON.stringify(r.body));
}

/**
 * Answer a map request: authenticate the signed request, then stream the
 * node's map until either side ends it. Errors before the stream starts are
 * the API's JSON errors (401 for a bad signature or an unknown node, 403…).
 */
export async function serveMapStream(rt: ControlRuntime, req: IncomingMessage, res: ServerResponse) {
  if (req.method !== "GET") {
    send(
      res,
      errorReplyOf(
        405,
        { error: "method_not_allowed", message: `${MAP_PATH} answers GET only` },
        { allow: "GET" },
      ),
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
      if (!res.headersSent) res.writeHead(200, SSE_HEADERS);
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
    send(res, errorReply(err, rt.log, `GET ${MAP_PATH}`));
  }
}
