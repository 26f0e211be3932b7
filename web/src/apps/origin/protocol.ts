// What the console page, the web-apps origin's pages and its service worker
// say to each other. An app lives at `/<machine>:<port>/<path>` on the apps
// origin; the console page framing it hands the service worker a MessagePort
// (a "bridge") on which each `connect` is answered with a TCP connection of
// the browser's node to that app (and to nothing else).

export interface Target {
  machine: string;
  port: number;
  /** `machine:port`, as in the path. */
  key: string;
  /** The app's own origin, for its cookies and Origin/Referer headers (`http://machine` for port 80). */
  origin: string;
  /** The Host header the app expects. */
  hostHeader: string;
}

/** A machine name (MagicDNS, short or full) or a tailnet address; a port. */
const TARGET =
  /^\/([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*|\[[0-9a-f:.]+\]):(\d{1,5})(\/.*)?$/i;

export function parseTarget(pathname: string): { target: Target; path: string } | null {
  const m = TARGET.exec(pathname);
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return null;
  const machine = m[1]!.toLowerCase();
  const hostHeader = port === 80 ? machine : `${machine}:${port}`;
  return {
    target: { machine, port, key: `${machine}:${port}`, origin: `http://${hostHeader}`, hostHeader },
    path: m[3] ?? "/",
  };
}

export type BridgeRequest = { op: "connect"; id: number } | { op: "ping"; id: number };
export type BridgeReply =
  | { id: number; ok: true; readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> }
  | { id: number; ok: true; pong: true }
  | { id: number; ok: false; message: string; code?: string };

/** Page (apps origin) → console: this app's pages need a bridge. */
export const NEED_BRIDGE = "trellis-need-bridge";
/** Console → page, with the port: a bridge for the app. Page → service worker: the same. */
export const BRIDGE = "trellis-bridge";

type Connection = { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> };

/** Asks for connections on a bridge; a bridge that stays silent is reported as gone. */
export class BridgeClient {
  private next = 1;
  private readonly waiting = new Map<
    number,
    { resolve: (d: Connection | null) => void; reject: (e: Error) => void }
  >();

  constructor(
    readonly port: MessagePort,
    /** Called when the other end's page is gone (Chromium's MessagePort close event). */
    onGone?: () => void,
  ) {
    port.addEventListener("close", () => {
      for (const w of this.waiting.values()) w.reject(new BridgeGone());
      this.waiting.clear();
      onGone?.();
    });
    port.onmessage = (e: MessageEvent<BridgeReply>) => {
      const w = this.waiting.get(e.data.id);
      if (!w) return;
      this.waiting.delete(e.data.id);
      if (e.data.ok && "pong" in e.data) w.resolve(null);
      else if (e.data.ok) w.resolve({ readable: e.data.readable, writable: e.data.writable });
      else w.reject(Object.assign(new Error(e.data.message), { code: e.data.code }));
    };
    port.start();
  }

  /** A TCP connection of the browser's node to the app. */
  async connect(timeoutMs = 15_000): Promise<Connection> {
    return (await this.ask("connect", timeoutMs))!;
  }

  /** Whether the console page behind this bridge still answers (a closed page does not). */
  alive(timeoutMs = 800): Promise<boolean> {
    return this.ask("ping", timeoutMs).then(
      () => true,
      () => false,
    );
  }

  private ask(op: BridgeRequest["op"], timeoutMs: number): Promise<Connection | null> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new BridgeGone());
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (d) => (clearTimeout(timer), resolve(d)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      const req: BridgeRequest = { op, id };
      this.port.postMessage(req);
    });
  }
}

/** The console page behind a bridge did not answer (it closed). */
export class BridgeGone extends Error {
  override readonly name = "BridgeGone";
  constructor() {
    super("the Trellis page showing this app no longer answers");
  }
}
