import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import { FRAME_HEADER_LEN, MAX_INFO_LEN, PROTOCOL_VERSION } from "@trellis/client/derp";
import type { RelayServer, RelayConn } from "./server";

/** The WebSocket subprotocol DERP clients offer. */
export const DERP_SUBPROTOCOL = "derp";

/**
 * Largest WebSocket message the relay sends. DERP over WebSocket is a byte
 * stream, so what the relay writes at once is cut into messages of at most
 * this size wherever the cut falls (a 64 KiB packet's frame spans three): Go
 * WebSocket readers, Tailscale's included, refuse messages over 32 KiB.
 */
export const WS_MAX_MESSAGE = 32 * 1024;

function remoteOf(socket: Duplex): { ip: string; port: number } {
  const s = socket as Socket;
  return { ip: s.remoteAddress ?? "0.0.0.0", port: s.remotePort ?? 0 };
}

/**
 * Carries DERP over HTTP on some path (default `/derp`), in both ways clients
 * use: a WebSocket (browsers; each binary message is a slice of the frame
 * stream) or a plain `Upgrade: DERP` connection (native clients; raw frames on
 * the TCP stream after the 101 response).
 */
/** The client address of an upgrade request: its handshakes are counted under it. */
export type ClientIp = (req: IncomingMessage) => string;

export class RelayHttpTransport {
  private readonly wss: WebSocketServer;

  constructor(
    readonly relay: RelayServer,
    readonly path = "/derp",
    /** The socket's remote address by default; behind a trusted proxy, the forwarded client. */
    private readonly clientIp: ClientIp = (req) => req.socket.remoteAddress ?? "0.0.0.0",
  ) {
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: FRAME_HEADER_LEN + MAX_INFO_LEN,
      perMessageDeflate: false,
      handleProtocols: (protocols) => (protocols.has(DERP_SUBPROTOCOL) ? DERP_SUBPROTOCOL : false),
    });
  }

  private matches(req: IncomingMessage): boolean {
    return (req.url ?? "").split("?")[0] === this.path;
  }

  /** Take an upgrade request for the relay's path; false (socket untouched) for any other. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    if (!this.matches(req)) return false;
    const ip = this.clientIp(req);
    const refused = this.relay.refusal(ip);
    if (refused === "refused_full") {
      socket.end("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      return true;
    }
    if (refused === "refused_handshakes_per_ip") {
      socket.end(
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
      );
      return true;
    }
    const upgrade = (req.headers.upgrade ?? "").toLowerCase();
    if (upgrade === "websocket") {
      // ws completes an upgrade synchronously (no verifyClient): no other upgrade runs between the check and accept.
      this.wss.handleUpgrade(req, socket, head, (ws) => this.acceptWebSocket(ws, socket, ip));
    } else if (upgrade === "derp") {
      this.acceptRaw(req, socket as Socket, head, ip);
    } else {
      socket.end("HTTP/1.1 426 Upgrade Required\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    }
    return true;
  }

  /** Plain GETs of the relay's path and its probe, as Tailscale's derper answers them. */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    const path = (req.url ?? "").split("?")[0];
    if (path === this.path) {
      res.writeHead(426, { "content-type": "text/plain" }).end("DERP requires a connection upgrade\n");
      return true;
    }
    if (path === `${this.path}/probe` || path === `${this.path}/latency-check`) {
      res.writeHead(200, { "content-type": "text/plain", "cache-control": "no-store" }).end();
      return true;
    }
    return false;
  }

  private acceptWebSocket(ws: WebSocket, socket: Duplex, ip: string): void {
    ws.binaryType = "nodebuffer";
    const conn: RelayConn = {
      remote: remoteOf(socket),
      write: (data, done) => {
        if (data.length <= WS_MAX_MESSAGE) {
          ws.send(data, { binary: true }, () => done());
          return;
        }
        // Several messages, written to the socket together.
        socket.cork();
        for (let off = 0; off < data.length; off += WS_MAX_MESSAGE) {
          const end = Math.min(off + WS_MAX_MESSAGE, data.length);
          ws.send(data.subarray(off, end), { binary: true }, end === data.length ? () => done() : undefined);
        }
        socket.uncork();
      },
      close: () => {
        if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(1000);
        setTimeout(() => ws.terminate(), 2000).unref();
      },
    };
    const handle = this.relay.accept(conn, { ip });
    ws.on("message", (data: Buffer, isBinary) => {
      if (!isBinary) {
        ws.close(1003, "DERP frames are binary");
        return;
      }
      handle.data(data);
    });
    ws.on("close", () => handle.closed());
    ws.on("error", () => handle.closed());
  }

  private acceptRaw(req: IncomingMessage, socket: Socket, head: Buffer, ip: string): void {
    socket.setNoDelay(true);
    // A client that asks for fast start reads frames at once, with no 101 response.
    const fastStart = req.headers["derp-fast-start"] === "1";
    if (!fastStart) {
      socket.write(
        "HTTP/1.1 101 Switching Protocols\r\n" +
          "Upgrade: DERP\r\nConnection: Upgrade\r\n" +
          `Derp-Version: ${PROTOCOL_VERSION}\r\n` +
          `Derp-Public-Key: ${Buffer.from(this.relay.publicKey).toString("hex")}\r\n\r\n`,
      );
    }
    const conn: RelayConn = {
      remote: remoteOf(socket),
      write: (data, done) => {
        socket.write(data, () => done());
      },
      close: () => {
        socket.end();
        setTimeout(() => socket.destroy(), 2000).unref();
      },
    };
    const handle = this.relay.accept(conn, { ip });
    if (head.length) handle.data(head);
    socket.on("data", (d: Buffer) => handle.data(d));
    // Node's HTTP server sockets are allowHalfOpen: a client's FIN arrives as
    // `end` and nothing more, so without this the client would stay
    // registered (and the socket in CLOSE_WAIT) until the idle timeout.
    socket.on("end", () => handle.closed());
    socket.on("close", () => handle.closed());
    socket.on("error", () => handle.closed());
  }

  /** Close the WebSocket server (connections are closed by the relay). */
  close(): Promise<void> {
    return new Promise((resolve) => this.wss.close(() => resolve()));
  }
}
