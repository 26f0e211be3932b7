// The node API on node:http: every endpoint nodes call (registration, the
// map stream, endpoints, plain WireGuard peers seen, signals, connection
// reports, logout, the control
// key and relay map, relay admission), served by the server process before
// Next.js, which keeps the console and the admin API. One router, one body
// size check (in bytes, http/body.ts), one error mapping (http/errors.ts).
// The route table is the list of node endpoints; tests and the control
// benchmark serve exactly this.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "@trellis/log";
import { checkOrigin } from "../auth/csrf";
import type { Actor } from "../auth/actor";
import { MAX_CONNECTION_REPORT_BYTES } from "../connlog";
import type { ControlRuntime } from "../runtime";
import { MAX_NODE_BODY_BYTES, readBody } from "./body";
import { errorReply, errorReplyOf } from "./errors";
import { serveMapStream, MAP_PATH } from "./map";
import type { SignedRequest } from "../node-auth";

export interface NodeApiOptions {
  /**
   * The console session riding along on a request (a browser tab registering
   * its own key), or null. The web server decodes its session cookie; the
   * router adds the CSRF origin check such a cookie-authenticated change needs.
   */
  sessionActor?: (req: IncomingMessage) => Promise<Actor | null>;
}

interface Ctx {
  rt: ControlRuntime;
  req: IncomingMessage;
  /** The request as its signature covers it (method, target, Authorization, raw body). */
  signed: SignedRequest;
  opts: NodeApiOptions;
}

interface Route {
  /** Largest body accepted; 0 for none read. */
  maxBody: number;
  run(ctx: Ctx): Promise<{ status: number; body: unknown }>;
}

const ok = (body: unknown, status = 200) => ({ status, body });

/** Node endpoints by path, then method. `GET /api/v1/map` streams and is served by http/map.ts. */
const ROUTES: Record<string, Partial<Record<string, Route>>> = {
  "/api/v1/key": {
    GET: { maxBody: 0, run: async ({ rt }) => ok(rt.controlKey()) },
  },
  "/api/v1/relay-map": {
    GET: { maxBody: 0, run: async ({ rt }) => ok(rt.relayMap()) },
  },
  "/api/v1/register": {
    POST: {
      maxBody: MAX_NODE_BODY_BYTES,
      run: async ({ rt, req, signed, opts }) => {
        const session = (await opts.sessionActor?.(req)) ?? null;
        if (session) {
          checkOrigin(
            {
              origin: header(req, "origin"),
              secFetchSite: header(req, "sec-fetch-site"),
              host: header(req, "host"),
            },
            rt.config.publicUrl,
          );
        }
        const res = await rt.register(signed, session);
        return ok(res, res.created ? 201 : 200);
      },
    },
  },
  "/api/v1/endpoints": {
    POST: {
      maxBody: MAX_NODE_BODY_BYTES,
      run: async ({ rt, signed }) => ok(await rt.updateEndpoints(signed)),
    },
  },
  "/api/v1/wireguard-peers/seen": {
    POST: {
      maxBody: MAX_NODE_BODY_BYTES,
      run: async ({ rt, signed }) => ok(await rt.plainPeersSeen(signed)),
    },
  },
  "/api/v1/logout": {
    POST: { maxBody: MAX_NODE_BODY_BYTES, run: async ({ rt, signed }) => ok(await rt.logout(signed)) },
  },
  "/api/v1/signal": {
    POST: { maxBody: MAX_NODE_BODY_BYTES, run: async ({ rt, signed }) => ok(await rt.signal(signed), 202) },
  },
  // GET /api/v1/connections is the admin API's (Next.js): only the node's POST is here.
  "/api/v1/connections": {
    POST: {
      maxBody: MAX_CONNECTION_REPORT_BYTES,
      run: async ({ rt, signed }) => ok(await rt.reportConnections(signed)),
    },
  },
  "/api/v1/relay/verify": {
    POST: {
      maxBody: MAX_NODE_BODY_BYTES * 2,
      run: async ({ rt, signed }) => ok(await rt.verifyRelayClients(signed.body)),
    },
  },
};

/** Every endpoint of the node API as [method, path] (tests cover each: a new one cannot be missed). */
export function nodeRoutes(): [string, string][] {
  return Object.entries(ROUTES).flatMap(([path, methods]) =>
    Object.keys(methods).map((m) => [m, path] as [string, string]),
  );
}

/** Paths whose every method is the node API's (others get 405 here rather than Next.js's 404). */
const NODE_ONLY = new Set(Object.keys(ROUTES).filter((p) => p !== "/api/v1/connections"));

function header(req: IncomingMessage, name: string): string | null {
  const v = req.headers[name];
  return typeof v === "string" ? v : null;
}

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? "/";
  const q = url.indexOf("?");
  return q < 0 ? url : url.slice(0, q);
}

export function send(res: ServerResponse, status: number, headers: Record<string, string>, body: unknown) {
  res.writeHead(status, headers).end(JSON.stringify(body));
}

export class NodeApi {
  private readonly log: Logger;

  constructor(
    private readonly rt: ControlRuntime,
    private readonly opts: NodeApiOptions = {},
  ) {
    this.log = rt.log.child({ component: "node-api" });
  }

  /** Does this router answer the request? (Then call `serve`; otherwise hand it to the next handler.) */
  handles(req: IncomingMessage): boolean {
    const path = pathOf(req);
    if (path === MAP_PATH || NODE_ONLY.has(path)) return true;
    return ROUTES[path]?.[req.method ?? "GET"] !== undefined;
  }

  /** Serve a request `handles` accepted. */
  async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = pathOf(req);
    if (path === MAP_PATH) return serveMapStream(this.rt, req, res);
    const method = req.method ?? "GET";
    const route = ROUTES[path]?.[method];
    const name = `${method} ${path}`;
    if (!route) {
      const allow = Object.keys(ROUTES[path] ?? {}).join(", ");
      const r = errorReplyOf(
        405,
        { error: "method_not_allowed", message: `${path} answers ${allow} only` },
        { allow },
      );
      return send(res, r.status, r.headers, r.body);
    }
    try {
      const body =
        route.maxBody > 0
          ? await readBody(req, route.maxBody, header(req, "content-length"))
          : new Uint8Array(0);
      const out = await route.run({
        rt: this.rt,
        req,
        opts: this.opts,
        signed: { method, path: req.url ?? path, authorization: header(req, "authorization"), body },
      });
      send(res, out.status, { "content-type": "application/json", "cache-control": "no-store" }, out.body);
    } catch (err) {
      const r = errorReply(err, this.log, name);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      // A refused body is not read to its end: close rather than drain it.
      if (r.status === 413) r.headers.connection = "close";
      send(res, r.status, r.headers, r.body);
    }
  }

  /** A node:http request listener serving only the node API (404 for anything else): tests and benchmarks. */
  listener(): (req: IncomingMessage, res: ServerResponse) => void {
    return (req, res) => {
      if (this.handles(req)) {
        void this.serve(req, res);
        return;
      }
      const r = errorReplyOf(404, { error: "not_found", message: `no node endpoint ${pathOf(req)}` });
      send(res, r.status, r.headers, r.body);
    };
  }
}
