import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "@trellis/log";
import { encodeKey } from "@trellis/proto";
import type { KeyPair } from "@trellis/proto/keyfile";
import { RelayHttpTransport, type ClientIp } from "./http";
import { MeshConfigError, MeshPeer, parseMeshPeer } from "./mesh";
import { RelayMetrics } from "./metrics";
import { RelayServer, type ClientVerifier, type RelayLimits } from "./server";
import { StunServer } from "./stun";

export interface RelayConfig {
  key: KeyPair;
  log: Logger;
  /** URL path of the DERP endpoint. */
  path?: string;
  /** Shared mesh secret (64 hex digits); required to mesh. */
  meshKey?: string;
  /** The other relays of this region's mesh: `wss://…/derp#relaykey:<hex>` (mesh.ts, parseMeshPeer). */
  meshWith?: string[];
  /** Allow ws:// mesh peers (a private network, tests); wss:// is required otherwise. */
  meshInsecure?: boolean;
  /** Admit only node keys this accepts (verify-clients). */
  verifyClient?: ClientVerifier;
  limits?: Partial<RelayLimits>;
  /** UDP port for STUN; null for none. */
  stunPort?: number | null;
  stunHost?: string;
  /** Serve Prometheus metrics at this path (null: not at all). */
  metricsPath?: string | null;
  /** Include Node process metrics (off when embedded in a process that reports its own). */
  processMetrics?: boolean;
  /** Milliseconds clock of the rate limiter (tests freeze it); Date.now by default. */
  clock?: () => number;
  /**
   * The client address of an upgrade request, which limits.maxHandshakesPerIp
   * counts under: the socket's remote address by default (behind a reverse
   * proxy, pass one that believes the proxy's X-Forwarded-For).
   */
  clientIp?: ClientIp;
}

/** Health of a relay, as `/api/health` and the relay's own health endpoint report it. */
export interface RelayHealth {
  status: "listening" | "stopped";
  path: string;
  clients: number;
  server_key: string;
  verify_clients: boolean;
  stun_port?: number;
  mesh?: { peers: number; connected: number };
}

/**
 * A complete relay: the DERP server, its HTTP/WebSocket transport, optional
 * STUN and mesh links, and metrics. Embedded in the web server by default,
 * or run alone by `trellis-relay`.
 */
export class Relay {
  readonly server: RelayServer;
  readonly transport: RelayHttpTransport;
  readonly metrics: RelayMetrics;
  private readonly mesh: MeshPeer[] = [];
  private stun: StunServer | null = null;
  private stunPort: number | undefined;
  private stopped = false;

  private constructor(private readonly cfg: RelayConfig) {
    this.metrics = new RelayMetrics(cfg.processMetrics ?? false);
    this.server = new RelayServer({
      key: cfg.key,
      log: cfg.log,
      meshKey: cfg.meshKey,
      verifyClient: cfg.verifyClient,
      limits: cfg.limits,
      metrics: this.metrics,
      clock: cfg.clock,
    });
    this.transport = new RelayHttpTransport(this.server, cfg.path ?? "/derp", cfg.clientIp);
  }

  static async start(cfg: RelayConfig): Promise<Relay> {
    // Mesh peers are checked before anything starts: one bad entry starts nothing.
    if (cfg.meshWith?.length && !cfg.meshKey) throw new MeshConfigError("meshing needs a mesh key");
    const peers = (cfg.meshWith ?? []).map((entry) => parseMeshPeer(entry, cfg.meshInsecure));
    const relay = new Relay(cfg);
    if (cfg.stunPort !== undefined && cfg.stunPort !== null) {
      relay.stun = new StunServer();
      relay.stunPort = await relay.stun.listen(cfg.stunPort, cfg.stunHost);
    }
    for (const peer of peers) {
      relay.mesh.push(new MeshPeer(relay.server, peer, cfg.key, cfg.meshKey!, cfg.log));
    }
    return relay;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    return this.transport.handleUpgrade(req, socket, head);
  }

  /** Serve the relay's plain HTTP paths (probe, metrics); false for any other path. */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    const path = (req.url ?? "").split("?")[0];
    if (this.cfg.metricsPath && path === this.cfg.metricsPath && req.method === "GET") {
      this.metrics.render().then(
        (text) => res.writeHead(200, { "content-type": this.metrics.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
      return true;
    }
    return this.transport.handleRequest(req, res);
  }

  /** Ask verify-clients again about every connected node; drop those now refused (see RelayServer.revalidate). */
  revalidate(): Promise<number> {
    return this.server.revalidate();
  }

  get stunListenPort(): number | undefined {
    return this.stunPort;
  }

  health(): RelayHealth {
    return {
      status: this.stopped ? "stopped" : "listening",
      path: this.transport.path,
      clients: this.server.clientCount,
      server_key: encodeKey("relaykey", this.server.publicKey),
      verify_clients: this.cfg.verifyClient !== undefined,
      ...(this.stunPort !== undefined ? { stun_port: this.stunPort } : {}),
      ...(this.mesh.length
        ? { mesh: { peers: this.mesh.length, connected: this.mesh.filter((m) => m.connected).length } }
        : {}),
    };
  }

  /** Tell clients to come back shortly, then close everything. */
  async close(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.mesh.forEach((m) => m.close());
    this.server.close();
    await Promise.all([this.transport.close(), this.stun?.close()]);
  }
}
