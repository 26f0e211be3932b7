// A plain WireGuard peer on the native data plane: statically configured
// peers whose endpoints are UDP addresses, as wireguard-go is configured —
// no control server, no disco, no relay. For the interop tests against
// wireguard-go and the tunnel benchmark; the daemon drives the same data
// plane through the node engine instead.
//
// Each UDP address is an endpoint handle with a direct path in the data
// plane, so WireGuard traffic to and from it never reaches JS. The first
// datagram from an address the data plane does not know yet (a peer that
// initiates from an endpoint we were not told) comes up here; it gets a
// handle and a direct path, and the engine takes it from there.
import type { UdpAddr } from "@trellis/client";
import type { EngineOutput } from "@trellis/wasm";
import { NativeDataplane } from "./native";

export interface NativePeerConfig {
  publicKey: Uint8Array;
  presharedKey?: Uint8Array;
  /** "ip:port" (IPv4). */
  endpoint?: string;
  allowedIps: string[];
  persistentKeepalive?: number;
}

export interface NativeWireGuardOptions {
  privateKey: Uint8Array;
  /** TUN interface to create. */
  tun: string;
  /** UDP port on every address (0: any). */
  port: number;
  peers: NativePeerConfig[];
  /** The packet filter's rules (Tailscale FilterRule JSON); default: everything. */
  filter?: string;
  /** Timer granularity (ms). */
  tickMs?: number;
}

/** Everything allowed, as a plain WireGuard interface has no filter. */
export const ALLOW_ALL = '[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]}]';

export class NativePeerError extends Error {
  override readonly name = "NativePeerError";
}

function parseEndpoint(s: string): UdpAddr {
  const m = /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(s);
  if (!m) throw new NativePeerError(`endpoint "${s}" is not IPv4 ip:port`);
  return { address: m[1]!, port: Number(m[2]) };
}

export class NativeWireGuard {
  readonly dp: NativeDataplane;
  private readonly byAddr = new Map<string, number>();
  private readonly addrs: UdpAddr[] = [];
  private inbound: { data: Uint8Array; endpoint: number }[] = [];
  private readonly timer: NodeJS.Timeout;
  private scheduled = false;
  private closed = false;

  constructor(private readonly opts: NativeWireGuardOptions) {
    this.dp = new NativeDataplane(opts.privateKey, opts.tun, opts.port);
    const engine = this.dp.engine;
    engine.setFilter(opts.filter ?? ALLOW_ALL);
    for (const p of opts.peers) {
      engine.upsertPeer({
        publicKey: p.publicKey,
        presharedKey: p.presharedKey,
        allowedIps: p.allowedIps,
        endpoint: p.endpoint ? this.handle(parseEndpoint(p.endpoint)) : undefined,
        persistentKeepalive: p.persistentKeepalive,
      });
    }
    this.dp.udp.onMessage((data, from) => {
      // Not from a direct path yet (or not WireGuard): this address becomes one.
      this.inbound.push({ data: data.slice(), endpoint: this.handle(from) });
      this.kick();
    });
    this.dp.onWake(() => this.kick());
    this.timer = setInterval(() => this.kick(), opts.tickMs ?? 100);
  }

  get port(): number {
    return this.dp.udp.port;
  }

  get tunName(): string {
    return this.dp.device.name;
  }

  private handle(a: UdpAddr): number {
    const key = `${a.address}:${a.port}`;
    let h = this.byAddr.get(key);
    if (h === undefined) {
      h = this.addrs.length;
      this.addrs.push(a);
      this.byAddr.set(key, h);
      this.dp.hooks.setDirect(h, a);
    }
    return h;
  }

  private kick(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    queueMicrotask(() => this.turn());
  }

  private turn(): void {
    this.scheduled = false;
    if (this.closed) return;
    const batch = this.inbound;
    this.inbound = [];
    const out = batch.length ? this.dp.engine.receive(batch) : this.dp.engine.poll();
    this.carry(out);
  }

  private carry(out: EngineOutput[]): void {
    const toHost: Uint8Array[] = [];
    for (const o of out) {
      if (o.kind === "datagram") {
        const a = this.addrs[o.endpoint];
        if (a) this.dp.udp.send(o.data, a);
      } else if (o.kind === "packet") {
        toHost.push(o.data);
      }
    }
    this.dp.device.write(toHost);
  }

  /** Drop counters and per-peer state (the engine's, with the native path's counters). */
  stats(): ReturnType<NativeDataplane["engine"]["stats"]> {
    return this.dp.engine.stats();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.dp.close();
  }
}
