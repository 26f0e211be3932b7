// The node's control client: every call a node makes to the control server,
// typed by @trellis/proto/node, each signed with the node key (Authorization:
// Trellis-Node), each answer validated before it is believed. The browser
// tab, the gateway, the tests and the benchmarks all talk to the control
// server through this one client. Browser-safe: `fetch` is injected (the
// global one by default).
import type { z } from "zod";
import {
  apiErrorOf,
  ConnectionReportResponse,
  ControlKeyResponse,
  EndpointsResponse,
  LogoutRequest,
  LogoutResponse,
  PlainPeersSeenResponse,
  RegisterResponse,
  RelayMap,
  SignalResponse,
  type ApiIssue,
  type ConnectionReport,
  type EndpointsRequest,
  type PlainPeersSeenRequest,
  type RegisterRequest,
  type SignalRequest,
} from "@trellis/proto/node";
import { MapStream, type MapStreamOptions } from "./map-stream";
import type { ControlSigner } from "./signer";
import { MapWatcher, type MapWatchHandlers, type MapWatchOptions } from "./watch";

/** Whoever holds the node's private key: gives its public key and signers, never the key itself. */
export interface NodeKeyHolder {
  /** `nodekey:<64 hex>` */
  readonly publicKey: string;
  /** A signer of requests to the control server whose key is `controlKey`. */
  signer(controlKey: string): ControlSigner;
}

export interface ControlClientOptions {
  /** Origin of the control server, e.g. `https://vpn.example.com` (or `location.origin`). */
  baseUrl: string;
  key: NodeKeyHolder;
  fetch?: typeof fetch;
  /**
   * Send the page's cookies with registration: a browser tab registers its key
   * with the logged-in console session instead of a pre-auth key.
   */
  withSession?: boolean;
}

/** A refused or failed control request: the server's error code and message, or a transport failure. */
export class ControlRequestError extends Error {
  override readonly name = "ControlRequestError";
  constructor(
    /** HTTP status; 0 when no answer came (network, or an answer that is not the API's). */
    readonly status: number,
    /** The API's error code (`unknown_node`, `body_too_large`, …), or `network`, `bad_response`. */
    readonly code: string,
    message: string,
    readonly issues: ApiIssue[] = [],
  ) {
    super(message);
  }

  /** A 4xx: asking again the same way will not help (except 408/429). */
  get refused(): boolean {
    return this.status >= 400 && this.status < 500 && this.status !== 408 && this.status !== 429;
  }
}

/** Largest answer read from a node endpoint other than the map stream. */
const MAX_RESPONSE_CHARS = 1024 * 1024;

export class ControlClient {
  readonly baseUrl: string;
  private readonly fetchFn: typeof fetch;
  private controlKeyLoad: Promise<string> | null = null;
  private signerFor: { controlKey: string; signer: ControlSigner } | null = null;

  constructor(private readonly opts: ControlClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, "");
    this.fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** This node's key, `nodekey:<hex>`. */
  get nodeKey(): string {
    return this.opts.key.publicKey;
  }

  /** `GET /api/v1/key`: the control server's public key, fetched once. */
  controlKey(): Promise<string> {
    if (!this.controlKeyLoad) {
      const load = this.send("GET", "/api/v1/key", { signed: false }).then(
        async (res) => (await this.parse(res, ControlKeyResponse)).publicKey,
      );
      this.controlKeyLoad = load;
      // A failed fetch is not remembered: the next call asks again.
      load.catch(() => {
        if (this.controlKeyLoad === load) this.controlKeyLoad = null;
      });
    }
    return this.controlKeyLoad;
  }

  /** `GET /api/v1/relay-map` (also in every netmap). */
  async relayMap(): Promise<RelayMap> {
    return this.parse(await this.send("GET", "/api/v1/relay-map", { signed: false }), RelayMap);
  }

  /** `POST /api/v1/register`: register this node's key (or re-register it after a restart). */
  async register(req: RegisterRequest): Promise<RegisterResponse> {
    const res = await this.send("POST", "/api/v1/register", {
      body: JSON.stringify(req),
      session: this.opts.withSession === true,
    });
    return this.parse(res, RegisterResponse);
  }

  /** `POST /api/v1/endpoints`: where this node can be reached, and its home relay. */
  async updateEndpoints(req: EndpointsRequest): Promise<EndpointsResponse> {
    return this.parse(
      await this.send("POST", "/api/v1/endpoints", { body: JSON.stringify(req) }),
      EndpointsResponse,
    );
  }

  /** `POST /api/v1/wireguard-peers/seen`: when this gateway's plain WireGuard peers last completed a handshake with it. */
  async plainPeersSeen(req: PlainPeersSeenRequest): Promise<PlainPeersSeenResponse> {
    return this.parse(
      await this.send("POST", "/api/v1/wireguard-peers/seen", { body: JSON.stringify(req) }),
      PlainPeersSeenResponse,
    );
  }

  /**
   * `POST /api/v1/logout`: this node key stops working now; an ephemeral
   * node, or one that asks to be removed (a browser leaving), is deleted.
   */
  async logout(opts: LogoutRequest = {}): Promise<LogoutResponse> {
    const body = opts.remove === undefined ? "" : JSON.stringify(LogoutRequest.parse(opts));
    return this.parse(await this.send("POST", "/api/v1/logout", { body }), LogoutResponse);
  }

  /** `POST /api/v1/signal`: hand a sealed WebRTC signal to a peer's map stream. */
  async signal(req: SignalRequest): Promise<SignalResponse> {
    return this.parse(
      await this.send("POST", "/api/v1/signal", { body: JSON.stringify(req) }),
      SignalResponse,
    );
  }

  /** `POST /api/v1/connections`: report connections this node opened or accepted. */
  async reportConnections(report: ConnectionReport): Promise<ConnectionReportResponse> {
    return this.parse(
      await this.send("POST", "/api/v1/connections", { body: JSON.stringify(report) }),
      ConnectionReportResponse,
    );
  }

  /** `GET /api/v1/map`: one connection of the map stream (see MapStream). */
  async openMap(opts: MapStreamOptions = {}): Promise<MapStream> {
    // The stream owns its connection: closing it aborts the request, which drops the socket.
    const abort = new AbortController();
    const onAbort = () => abort.abort();
    if (opts.signal?.aborted) abort.abort();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const res = await this.send("GET", "/api/v1/map", { signal: abort.signal, stream: true });
      return new MapStream(res, abort, opts);
    } catch (err) {
      opts.signal?.removeEventListener("abort", onAbort);
      throw err;
    }
  }

  /**
   * Keep this node's map: open the stream, apply its messages, and open it
   * again with backoff when it drops or goes silent, or at once when a
   * message was lost (a seq gap), until stopped or the server ends it.
   */
  watchMap(handlers: MapWatchHandlers, opts: MapWatchOptions = {}): MapWatcher {
    return new MapWatcher(this, handlers, opts);
  }

  /**
   * A signed request as sent, answered with the raw Response whatever its
   * status. For callers that test the server's refusals; everyone else uses
   * the typed calls above.
   */
  async signedFetch(method: string, path: string, body = "", authorization?: string): Promise<Response> {
    const headers: Record<string, string> = {
      authorization: authorization ?? (await this.signer()).sign(method, path, body),
    };
    if (body) headers["content-type"] = "application/json";
    return this.fetchFn(this.baseUrl + path, { method, headers, body: body || undefined });
  }

  /** The signer for the server's current key. */
  private async signer(): Promise<ControlSigner> {
    const controlKey = await this.controlKey();
    if (this.signerFor?.controlKey !== controlKey) {
      this.signerFor = { controlKey, signer: this.opts.key.signer(controlKey) };
    }
    return this.signerFor.signer;
  }

  private async send(
    method: "GET" | "POST",
    path: string,
    o: { body?: string; signed?: boolean; session?: boolean; signal?: AbortSignal; stream?: boolean },
  ): Promise<Response> {
    const headers: Record<string, string> = { accept: o.stream ? "text/event-stream" : "application/json" };
    if (o.signed !== false) headers.authorization = (await this.signer()).sign(method, path, o.body ?? "");
    if (o.body) headers["content-type"] = "application/json";
    let res: Response;
    try {
      res = await this.fetchFn(this.baseUrl + path, {
        method,
        headers,
        body: method === "GET" ? undefined : (o.body ?? ""),
        signal: o.signal,
        // Cookies only where the session is meant to ride along; never to another origin.
        credentials: o.session ? "same-origin" : "omit",
      });
    } catch (err) {
      if (o.signal?.aborted) throw err;
      throw new ControlRequestError(
        0,
        "network",
        `could not reach the control server at ${this.baseUrl}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    if (res.ok) return res;
    const e = apiErrorOf(res.status, await readText(res).catch(() => ""));
    // A new control key (the server's key file was replaced): fetch it again next time.
    if (res.status === 401 && e.error === "bad_signature") this.controlKeyLoad = null;
    throw new ControlRequestError(res.status, e.error, e.message, e.issues);
  }

  private async parse<S extends z.ZodType>(res: Response, schema: S): Promise<z.output<S>> {
    const text = await readText(res);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new ControlRequestError(
        0,
        "bad_response",
        `${res.url || "the control server"} answered with no JSON`,
      );
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      throw new ControlRequestError(
        0,
        "bad_response",
        `unexpected answer from ${res.url || "the control server"}: ${parsed.error.issues[0]?.message ?? "invalid"}`,
      );
    }
    return parsed.data;
  }
}

/** The body as text, refusing one larger than MAX_RESPONSE_CHARS. */
async function readText(res: Response): Promise<string> {
  const length = Number(res.headers.get("content-length") ?? "0");
  if (length > MAX_RESPONSE_CHARS) {
    await res.body?.cancel();
    throw new ControlRequestError(0, "bad_response", "the control server's answer is too large");
  }
  const text = await res.text();
  if (text.length > MAX_RESPONSE_CHARS) {
    throw new ControlRequestError(0, "bad_response", "the control server's answer is too large");
  }
  return text;
}
