import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";

/** Why the relay dropped a packet (the `reason` label of trellis_relay_dropped_packets_total). */
export type DropReason =
  "queue_full" | "unknown_dest" | "rate_limited" | "too_large" | "gone" | "mesh_unreachable";

/** The relay's Prometheus metrics, in a registry of its own (several relays can share a process). */
export class RelayMetrics {
  readonly registry = new Registry();
  readonly clients = new Gauge({
    name: "trellis_relay_clients",
    help: "Connected clients that completed the handshake",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  readonly connections = new Counter({
    name: "trellis_relay_connections_total",
    help: "Connections by outcome: accepted, or why refused or closed",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });
  readonly handshakes = new Gauge({
    name: "trellis_relay_handshakes",
    help: "Connections still in the handshake (refusals are counted in trellis_relay_connections_total by outcome)",
    registers: [this.registry],
  });
  readonly packets = new Counter({
    name: "trellis_relay_forwarded_packets_total",
    help: "Packets delivered to a local client or handed to a mesh peer",
    labelNames: ["path"] as const,
    registers: [this.registry],
  });
  readonly bytes = new Counter({
    name: "trellis_relay_forwarded_bytes_total",
    help: "Packet bytes delivered to a local client or handed to a mesh peer",
    labelNames: ["path"] as const,
    registers: [this.registry],
  });
  readonly dropped = new Counter({
    name: "trellis_relay_dropped_packets_total",
    help: "Packets dropped, by reason",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly queued = new Gauge({
    name: "trellis_relay_queued_frames",
    help: "Frames waiting in per-client send queues, summed over clients",
    registers: [this.registry],
  });
  readonly maxQueue = new Gauge({
    name: "trellis_relay_max_queue_depth",
    help: "Deepest per-client send queue right now",
    registers: [this.registry],
  });

  constructor(withProcessMetrics = false) {
    if (withProcessMetrics) collectDefaultMetrics({ register: this.registry, prefix: "trellis_relay_" });
  }

  drop(reason: DropReason, n = 1): void {
    this.dropped.inc({ reason }, n);
  }

  /** The text exposition format for GET /metrics. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
