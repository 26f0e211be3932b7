// The relay path: DERP connections, one per region in use. The home region
// (the nearest, by a probe of each region's relays) is where peers reach
// this node; a peer homed elsewhere is reached through its own region's
// relay, dialled when first needed. Links reconnect with backoff by
// themselves (RelayLink). Browser-safe: the WebSocket comes from the host.
import type { RelayMap, RelayNode } from "@trellis/proto/node";
import { RelayLink, type SocketFactory } from "./derp/client";

export interface RelayPathsOptions {
  privateKey: Uint8Array;
  socketFactory: SocketFactory;
  /** A datagram from `src` (a node key, as the relay vouches) arrived. */
  onPacket(src: Uint8Array, data: Uint8Array): void;
  /** The home region changed, or its link came up or went down. */
  onHomeChange?(regionId: number | null): void;
  /** Time a region's probe; default: fetch its relays' `/derp/probe`. */
  probe?: (node: RelayNode) => Promise<number>;
}

/** How long a region probe may take before it counts as unreachable. */
const PROBE_TIMEOUT_MS = 3000;

async function fetchProbe(node: RelayNode): Promise<number> {
  const url = node.url.replace(/^ws/, "http").replace(/\/derp$/, "/derp/probe");
  const t0 = performance.now();
  const res = await fetch(url, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
  await res.arrayBuffer();
  if (!res.ok) throw new Error(`probe ${url}: ${res.status}`);
  return performance.now() - t0;
}

export class RelayPaths {
  private map: RelayMap = { regions: {} };
  private readonly links = new Map<number, RelayLink>();
  private homeRegion: number | null = null;
  /** Latest measured round trip to each region, ms. */
  readonly latency = new Map<number, number>();
  private closed = false;

  constructor(private readonly opts: RelayPathsOptions) {}

  /** The region peers reach this node through. */
  get home(): number | null {
    return this.homeRegion;
  }

  /** Whether the home link is up. */
  get connected(): boolean {
    return this.homeRegion !== null && (this.links.get(this.homeRegion)?.connected ?? false);
  }

  private node(regionId: number): RelayNode | undefined {
    return this.map.regions[String(regionId)]?.nodes[0];
  }

  /** A new relay map: drop links to regions gone, and choose the home region again. */
  setRelayMap(map: RelayMap): void {
    if (JSON.stringify(map) === JSON.stringify(this.map)) return;
    this.map = map;
    for (const [id, link] of this.links) {
      if (!this.node(id)) {
        link.close();
        this.links.delete(id);
      }
    }
    void this.chooseHome();
  }

  private async chooseHome(): Promise<void> {
    const ids = Object.keys(this.map.regions)
      .map(Number)
      .sort((a, b) => a - b);
    let best: number | null = ids[0] ?? null;
    if (ids.length > 1) {
      const probe = this.opts.probe ?? fetchProbe;
      const timed = await Promise.all(
        ids.map(async (id) => {
          try {
            const ms = await probe(this.node(id)!);
            this.latency.set(id, ms);
            return { id, ms };
          } catch {
            return { id, ms: Infinity };
          }
        }),
      );
      timed.sort((a, b) => a.ms - b.ms);
      if (timed[0] && timed[0].ms < Infinity) best = timed[0].id;
    }
    if (this.closed || best === this.homeRegion) return;
    this.homeRegion = best;
    if (best !== null) this.link(best);
    this.opts.onHomeChange?.(best);
  }

  private link(regionId: number): RelayLink | null {
    const existing = this.links.get(regionId);
    if (existing) return existing;
    const node = this.node(regionId);
    if (!node || this.closed) return null;
    const link = new RelayLink(
      {
        url: node.url,
        privateKey: this.opts.privateKey,
        socketFactory: this.opts.socketFactory,
        onConnect: (client) => {
          if (regionId === this.homeRegion) {
            client.notePreferred(true);
            this.opts.onHomeChange?.(regionId);
          }
          client
            .ping()
            .then((ms) => this.latency.set(regionId, ms))
            .catch(() => undefined);
        },
      },
      {
        packet: (src, data) => this.opts.onPacket(src, data),
        close: () => {
          if (regionId === this.homeRegion) this.opts.onHomeChange?.(regionId);
        },
      },
    );
    this.links.set(regionId, link);
    return link;
  }

  /** Send to `dst` through its home region's relay (ours when it has none or it is unknown). */
  send(dst: Uint8Array, data: Uint8Array, dstRegion: number | null): boolean {
    const region = dstRegion !== null && this.node(dstRegion) ? dstRegion : this.homeRegion;
    if (region === null) return false;
    return this.link(region)?.send(dst, data) ?? false;
  }

  /** Measure the home relay's round trip again (for status). */
  async measure(): Promise<number | null> {
    const home = this.homeRegion;
    const client = home === null ? null : this.links.get(home)?.current;
    if (!client || home === null) return null;
    const ms = await client.ping();
    this.latency.set(home, ms);
    return ms;
  }

  /** Time every region's probe now (netcheck); null for a region that did not answer. */
  async measureAll(): Promise<Map<number, number | null>> {
    const probe = this.opts.probe ?? fetchProbe;
    const ids = Object.keys(this.map.regions).map(Number);
    const out = new Map<number, number | null>();
    await Promise.all(
      ids.map(async (id) => {
        try {
          const ms = Math.round(await probe(this.node(id)!));
          this.latency.set(id, ms);
          out.set(id, ms);
        } catch {
          out.set(id, null);
        }
      }),
    );
    return out;
  }

  close(): void {
    this.closed = true;
    for (const l of this.links.values()) l.close();
    this.links.clear();
  }
}
