import { afterAll, describe, expect, it } from "vitest";
import { createLogger } from "@trellis/log";
import { DaemonMetrics, parseListenAddress, serveMetrics, type MetricsServer } from "./metrics";
import type { Status } from "./protocol";

const peer = (over: Partial<Status["peers"][number]>): Status["peers"][number] => ({
  name: "laptop",
  dnsName: "laptop.trellis.internal.",
  addresses: ["100.64.0.3/32"],
  online: true,
  path: "relay",
  pathDetail: "",
  rttMs: null,
  rxBytes: 0,
  txBytes: 0,
  lastHandshake: null,
  ...over,
});

const running: Status = {
  state: "running",
  loginServer: "http://127.0.0.1:8080",
  mode: "userspace",
  tun: null,
  dataplane: null,
  control: "connected",
  error: null,
  self: { name: "gw", dnsName: "gw.trellis.internal.", addresses: ["100.64.0.2/32"] },
  advertisedRoutes: [],
  approvedRoutes: [],
  udp: { port: 41641, endpoints: ["198.51.100.7:41641"] },
  exitNode: null,
  dns: null,
  prefs: null,
  acceptedRoutes: null,
  forwarding: null,
  relay: { region: 1, connected: true, latencyMs: 14 },
  peers: [
    peer({
      name: "laptop",
      path: "direct",
      rttMs: 3,
      rxBytes: 1200,
      txBytes: 3400,
      lastHandshake: 1_700_000_000_500,
    }),
    // Peer names are DNS labels; a label value that is not still comes out escaped.
    peer({ name: 'odd"name\\with\nnewline', online: false, path: "none" }),
  ],
  drops: { no_route: 3, filtered: 1 },
};

describe("the daemon's metrics", () => {
  let status: Status = running;
  const metrics = new DaemonMetrics(() => status);

  it("are Prometheus text with a type for each metric", async () => {
    const text = await metrics.render();
    for (const [name, type] of [
      ["trellis_node_state", "gauge"],
      ["trellis_control_state", "gauge"],
      ["trellis_relay_connected", "gauge"],
      ["trellis_peer_path", "gauge"],
      ["trellis_peer_rx_bytes_total", "counter"],
      ["trellis_peer_tx_bytes_total", "counter"],
      ["trellis_peer_last_handshake_seconds", "gauge"],
      ["trellis_drops_total", "counter"],
    ]) {
      expect(text).toContain(`# TYPE ${name} ${type}\n`);
      expect(text).toMatch(new RegExp(`^# HELP ${name} \\S`, "m"));
    }
    expect(metrics.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it("carry the status: states, relay, per-peer bytes, handshake, path, drops", async () => {
    const lines = (await metrics.render()).split("\n");
    expect(lines).toEqual(
      expect.arrayContaining([
        'trellis_node_state{state="running"} 1',
        'trellis_node_state{state="failed"} 0',
        'trellis_control_state{state="connected"} 1',
        "trellis_relay_connected 1",
        'trellis_relay_latency_seconds{region="1"} 0.014',
        "trellis_peers 2",
        'trellis_peer_online{peer="laptop"} 1',
        'trellis_peer_path{peer="laptop",path="direct"} 1',
        'trellis_peer_path{peer="laptop",path="relay"} 0',
        'trellis_peer_path{peer="laptop",path="none"} 0',
        'trellis_peer_rx_bytes_total{peer="laptop"} 1200',
        'trellis_peer_tx_bytes_total{peer="laptop"} 3400',
        'trellis_peer_last_handshake_seconds{peer="laptop"} 1700000000.5',
        'trellis_peer_rtt_seconds{peer="laptop"} 0.003',
        'trellis_drops_total{reason="no_route"} 3',
        'trellis_drops_total{reason="filtered"} 1',
      ]),
    );
  });

  it("escape label values as the exposition format says (backslash, quote, newline)", async () => {
    const text = await metrics.render();
    expect(text).toContain('trellis_peer_path{peer="odd\\"name\\\\with\\nnewline",path="none"} 1');
    expect(text).toContain('trellis_peer_last_handshake_seconds{peer="odd\\"name\\\\with\\nnewline"} 0');
    // Every sample stays on one line: name{labels} value.
    for (const line of text.split("\n").filter((l) => l && !l.startsWith("#"))) {
      expect(line).toMatch(/^[a-z_]+(\{.*\})? -?[0-9.e+]+$/);
    }
  });

  it("follow the status from scrape to scrape: a peer that left has no series, a stopped node no peers", async () => {
    status = { ...running, peers: [running.peers[0]!] };
    expect(await metrics.render()).not.toContain("odd");
    status = {
      ...running,
      state: "stopped",
      control: null,
      peers: [],
      drops: {},
      relay: { region: null, connected: false, latencyMs: null },
    };
    const text = await metrics.render();
    expect(text).toContain('trellis_node_state{state="stopped"} 1');
    expect(text).toContain("trellis_relay_connected 0");
    expect(text).not.toContain("trellis_peer_rx_bytes_total{");
    expect(text).not.toContain("trellis_control_state{");
    expect(text).not.toMatch(/^trellis_relay_latency_seconds/m);
  });
});

describe("the metrics endpoint", () => {
  let server: MetricsServer;
  afterAll(() => server?.close());

  it("takes HOST:PORT only, the host required", () => {
    expect(parseListenAddress("127.0.0.1:9101")).toEqual({ host: "127.0.0.1", port: 9101 });
    expect(parseListenAddress("[::1]:9101")).toEqual({ host: "::1", port: 9101 });
    expect(parseListenAddress("localhost:0")).toEqual({ host: "localhost", port: 0 });
    for (const bad of ["9101", ":9101", "::1:9101", "127.0.0.1:99999", "127.0.0.1", "http://127.0.0.1:9101"])
      expect(() => parseListenAddress(bad), bad).toThrow(/is not HOST:PORT/);
  });

  it("serves GET /metrics where told, and nothing else", async () => {
    server = await serveMetrics(
      { host: "127.0.0.1", port: 0 },
      new DaemonMetrics(() => running),
      createLogger("metrics-test", "silent"),
    );
    const base = `http://127.0.0.1:${server.address.port}`;
    const ok = await fetch(`${base}/metrics`);
    expect(ok.status).toBe(200);
    expect(ok.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await ok.text()).toContain('trellis_peer_rx_bytes_total{peer="laptop"} 1200');
    expect((await fetch(`${base}/metrics?x=1`)).status).toBe(200);
    for (const path of ["/", "/metrics/", "/debug", "/metricsx"])
      expect((await fetch(base + path)).status, path).toBe(404);
    const post = await fetch(`${base}/metrics`, { method: "POST" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
  });
});
