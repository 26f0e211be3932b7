import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import type { Logger } from "@trellis/log";
import { encodeKey } from "@trellis/proto";
import {
  FRAME_HEADER_LEN,
  FrameError,
  FrameType,
  MAX_FRAME_SIZE,
  decodeFrame,
  encodeFrame,
  serverKeyFrame,
} from "./frame";
import type { KeyPair } from "@trellis/proto/keyfile";

export interface RelayOptions {
  key: KeyPair;
  log: Logger;
  /** URL path of the WebSocket endpoint. */
  path?: string;
  /** Refuse connections beyond this many. */
  maxClients?: number;
}

export interface RelayHealth {
  status: "listening" | "stopped";
  path: string;
  clients: number;
  server_key: string;
}

/**
 * The DERP relay: accepts WebSocket connections at `/derp` on whatever HTTP
 * server hands it upgrades, opens each with the server-key frame, and answers
 * keepalives and pings. It can be embedded in the web server or run alone.
 */
export class Relay {
  private readonly wss: WebSocketServer;
  private readonly path: string;
  private readonly maxClients: number;
  private readonly log: Logger;
  private readonly key: KeyPair;
  private readonly clients = new Set<WebSocket>();
  private stopped = false;

  constructor(opts: RelayOptions) {
    this.key = opts.key;
    this.log = opts.log;
    this.path = opts.path ?? "/derp";
    this.maxClients = opts.maxClients ?? 10_000;
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: FRAME_HEADER_LEN + MAX_FRAME_SIZE,
      perMessageDeflate: false,
    });
  }

  /**
   * Take an HTTP upgrade if it is for the relay's path. Returns false, leaving
   * the socket alone, for any other path.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const path = (req.url ?? "").split("?")[0];
    if (path !== this.path) return false;
    if (this.stopped || this.clients.size >= this.maxClients) {
      socket.end("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n");
      return true;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws));
    return true;
  }

  private accept(ws: WebSocket): void {
    this.clients.add(ws);
    ws.binaryType = "nodebuffer";
    ws.on("close", () => this.clients.delete(ws));
    ws.on("error", (err) => this.log.debug({ err }, "relay client socket error"));
    ws.on("message", (data, isBinary) => this.onMessage(ws, data as Buffer, isBinary));
    ws.send(serverKeyFrame(this.key.publicKey));
  }

  private onMessage(ws: WebSocket, data: Buffer, isBinary: boolean): void {
    if (!isBinary) {
      ws.close(1003, "DERP frames are binary");
      return;
    }
    let frame;
    try {
      frame = decodeFrame(data);
    } catch (err) {
      if (err instanceof FrameError) {
        ws.close(1002, err.message.slice(0, 120));
        return;
      }
      throw err;
    }
    switch (frame.type) {
      case FrameType.KeepAlive:
        return;
      case FrameType.Ping:
        if (frame.payload.length !== 8) {
          ws.close(1002, "ping payload must be 8 bytes");
          return;
        }
        ws.send(encodeFrame(FrameType.Pong, frame.payload));
        return;
      default:
        ws.close(1003, `frame type 0x${frame.type.toString(16)} is not supported by this relay`);
    }
  }

  health(): RelayHealth {
    return {
      status: this.stopped ? "stopped" : "listening",
      path: this.path,
      clients: this.clients.size,
      server_key: encodeKey("relaykey", this.key.publicKey),
    };
  }

  /** Tell clients the relay is going away and close every connection. */
  async close(): Promise<void> {
    this.stopped = true;
    for (const ws of this.clients) ws.close(1001, "relay shutting down");
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}
