// The daemon's Prometheus endpoint (`trellis daemon --metrics ADDR`, off by
// default): GET /metrics in the text exposition format, everything else 404.
// Every value comes from the daemon's status at scrape time, so nothing is
// counted twice and there is no state to keep: the engine's own counters
// (bytes, drops) are exposed as counters, and they start again from zero
// when the node comes up again, which Prometheus's rate() expects.
// prom-client (as the relay's metrics) formats and escapes the text.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import type { Logger } from "@trellis/log";
import type { Status } from "./protocol";

const NODE_STATES = ["stopped", "starting", "running", "failed"] as const;
const PATHS = ["direct", "relay", "none"] as const;

/** The daemon's metrics, computed from one status snapshot per scrape. */
export class DaemonMetrics {
  readonly registry = new Registry();
  private snapshot: Status | null = null;

  constructor(
    private readonly status: () => Status,
    opts: { processMetrics?: boolean } = {},
  ) {
    const registers = [this.registry];
    // Each metric refills itself from the snapshot when the registry collects it.
    const gauge = <L extends string>(
      name: string,
      help: string,
      labelNames: readonly L[],
      fill: (g: Gauge<L>, s: Status) => void,
    ) => {
      const g: Gauge<L> = new Gauge({
        name,
        help,
        labelNames,
        registers,
        collect: () => {
          g.reset();
          if (this.snapshot) fill(g, this.snapshot);
        },
      });
    };
    const counter = <L extends string>(
      name: string,
      help: string,
      labelNames: readonly L[],
      fill: (c: Counter<L>, s: Status) => void,
    ) => {
      const c: Counter<L> = new Counter({
        name,
        help,
        labelNames,
        registers,
        collect: () => {
          c.reset();
          if (this.snapshot) fill(c, this.snapshot);
        },
      });
    };

    gauge("trellis_node_state", "The node's state: 1 for the current one", ["state"], (g, s) => {
      for (const state of NODE_STATES) g.set({ state }, s.state === state ? 1 : 0);
    });
    gauge(
      "trellis_control_state",
      "The control connection's phase (connecting, connected, retrying, ...): 1 for the current one",
      ["state"],
      (g, s) => {
        if (s.control) g.set({ state: s.control }, 1);
      },
    );
    gauge("trellis_relay_connected", "1 while the home DERP relay is connected", [], (g, s) =>
      g.set(s.relay.connected ? 1 : 0),
    );
    // Labelled by region, so that an unmeasured latency is no series rather than a 0.
    gauge(
      "trellis_relay_latency_seconds",
      "Round trip to the home relay, when measured",
      ["region"],
      (g, s) => {
        if (s.relay.latencyMs !== null)
          g.set({ region: String(s.relay.region ?? "") }, s.relay.latencyMs / 1000);
      },
    );
    gauge("trellis_peers", "Peers in the node's map", [], (g, s) => g.set(s.peers.length));
    gauge("trellis_peer_online", "1 when the control server reports the peer online", ["peer"], (g, s) => {
      for (const p of s.peers) g.set({ peer: p.name }, p.online ? 1 : 0);
    });
    gauge(
      "trellis_peer_path",
      "The path traffic to the peer takes now: 1 for the current one (direct, relay or none)",
      ["peer", "path"],
      (g, s) => {
        for (const p of s.peers)
          for (const path of PATHS) g.set({ peer: p.name, path }, p.path === path ? 1 : 0);
      },
    );
    counter("trellis_peer_rx_bytes_total", "WireGuard bytes received from the peer", ["peer"], (c, s) => {
      for (const p of s.peers) c.inc({ peer: p.name }, p.rxBytes);
    });
    counter("trellis_peer_tx_bytes_total", "WireGuard bytes sent to the peer", ["peer"], (c, s) => {
      for (const p of s.peers) c.inc({ peer: p.name }, p.txBytes);
    });
    gauge(
      "trellis_peer_last_handshake_seconds",
      "Unix time of the last completed WireGuard handshake with the peer (0: none yet)",
      ["peer"],
      (g, s) => {
        for (const p of s.peers)
          g.set({ peer: p.name }, p.lastHandshake === null ? 0 : p.lastHandshake / 1000);
      },
    );
    gauge("trellis_peer_rtt_seconds", "Last measured round trip to the peer", ["peer"], (g, s) => {
      for (const p of s.peers) if (p.rttMs !== null) g.set({ peer: p.name }, p.rttMs / 1000);
    });
    counter("trellis_drops_total", "Packets the node dropped, by reason", ["reason"], (c, s) => {
      for (const [reason, n] of Object.entries(s.drops)) c.inc({ reason }, n);
    });
    gauge(
      "trellis_subnet_routes_forwarded",
      "TUN mode: approved routes this node forwards as a subnet router",
      [],
      (g, s) => g.set(s.forwarding?.routes.length ?? 0),
    );
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: "trellis_" });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text of the daemon as it is now. */
  async render(): Promise<string> {
    this.snapshot = this.status();
    return this.registry.metrics();
  }
}

/** `HOST:PORT` or `[IPv6]:PORT`; the host is required, so the endpoint listens only where it is told. */
export function parseListenAddress(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new Error(`"${text}" is not HOST:PORT (such as 127.0.0.1:9101 or [::1]:9101)`);
  }
  return { host: (m[1] ?? m[2])!, port };
}

export interface MetricsServer {
  /** Where it listens (the port chosen when 0 was given). */
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

/** Serve `metrics` at GET /metrics on `host:port`; other paths 404, other methods 405. */
export async function serveMetrics(
  where: { host: string; port: number },
  metrics: DaemonMetrics,
  log: Logger,
): Promise<MetricsServer> {
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "").split("?")[0];
    if (path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: the metrics are at /metrics\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("use GET\n");
      return;
    }
    metrics.render().then(
      (text) =>
        res.writeHead(200, { "content-type": metrics.contentType }).end(req.method === "HEAD" ? "" : text),
      (err: unknown) => {
        log.error({ err: err instanceof Error ? err.message : String(err) }, "metrics scrape failed");
        res.writeHead(500, { "content-type": "text/plain" }).end("the daemon's status could not be read\n");
      },
    );
  });
  // A scraper needs little: bounded requests and a handful of connections.
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  server.maxConnections = 16;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(where.port, where.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err) => log.error({ err: err.message }, "metrics server error"));
  const bound = server.address();
  const port = typeof bound === "object" && bound ? bound.port : where.port;
  return {
    address: { host: where.host, port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
