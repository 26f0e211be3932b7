import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { isIPv6 } from "node:net";
import type { Logger } from "@trellis/log";
import { WireGuardDevice, type WgOutput } from "@trellis/wasm/node";
import type { TunDevice } from "../tun";

/** A WireGuard peer as the gateway configures it (keys raw, endpoint "ip:port"). */
export interface UdpPeerConfig {
  publicKey: Uint8Array;
  presharedKey?: Uint8Array;
  endpoint?: string;
  allowedIps: string[];
  persistentKeepalive?: number;
}

export interface UdpWireGuardOptions {
  privateKey: Uint8Array;
  /** UDP address to listen on. */
  listen: { host: string; port: number };
  tun: TunDevice;
  peers: UdpPeerConfig[];
  log: Logger;
  /** Milliseconds of wall-clock time; injectable so tests can move time forward. */
  clock?: () => number;
  /** Timer granularity. */
  tickMs?: number;
}

function parseEndpoint(s: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  if (!m) throw new Error(`endpoint "${s}" is not ip:port or [ip6]:port`);
  return { host: m[1]!, port: Number(m[2]) };
}

/**
 * The gateway's data plane over plain UDP: IP packets read from a TUN device
 * go through the WASM WireGuard device to UDP datagrams, and back. Endpoints
 * are the device's opaque handles; here each one names an ip:port.
 */
export class UdpWireGuard {
  readonly device: WireGuardDevice;
  private readonly socket: Socket;
  private readonly byAddr = new Map<string, number>();
  private readonly addrs: { host: string; port: number }[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly clock: () => number;
  readonly drops = new Map<string, number>();

  private constructor(
    private readonly opts: UdpWireGuardOptions,
    socket: Socket,
  ) {
    this.clock = opts.clock ?? Date.now;
    this.socket = socket;
    this.device = new WireGuardDevice(opts.privateKey);
    for (const p of opts.peers) {
      this.device.upsertPeer({
        publicKey: p.publicKey,
        presharedKey: p.presharedKey,
        allowedIps: p.allowedIps,
        endpoint: p.endpoint ? this.handle(parseEndpoint(p.endpoint)) : undefined,
        persistentKeepalive: p.persistentKeepalive,
      });
    }
    socket.on("message", (msg, rinfo) => this.onDatagram(msg, rinfo));
    socket.on("error", (err) => opts.log.warn({ err }, "udp socket error"));
    opts.tun.onPacket((pkt) => this.apply(this.device.send(pkt, this.clock())));
    this.timer = setInterval(() => this.apply(this.device.tick(this.clock())), opts.tickMs ?? 100);
  }

  /** Bind the socket and start moving packets. */
  static async start(opts: UdpWireGuardOptions): Promise<UdpWireGuard> {
    const socket = createSocket({ type: isIPv6(opts.listen.host) ? "udp6" : "udp4" });
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(opts.listen.port, opts.listen.host, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    return new UdpWireGuard(opts, socket);
  }

  private handle(addr: { host: string; port: number }): number {
    const key = `${addr.host}|${addr.port}`;
    let h = this.byAddr.get(key);
    if (h === undefined) {
      h = this.addrs.length;
      this.addrs.push(addr);
      this.byAddr.set(key, h);
    }
    return h;
  }

  private onDatagram(msg: Buffer, rinfo: RemoteInfo): void {
    const endpoint = this.handle({ host: rinfo.address, port: rinfo.port });
    this.apply(this.device.receive(msg, endpoint, this.clock()));
  }

  private apply(outputs: WgOutput[]): void {
    for (const o of outputs) {
      if (o.kind === "datagram") {
        const addr = this.addrs[o.endpoint];
        if (addr) this.socket.send(o.data, addr.port, addr.host);
      } else if (o.kind === "packet") {
        this.opts.tun.write(o.data);
      } else {
        this.drops.set(o.reason, (this.drops.get(o.reason) ?? 0) + 1);
      }
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
    this.device.close();
  }
}
