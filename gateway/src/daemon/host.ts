// The daemon's side of the host: a TUN device carrying the tailnet's packets,
// addressed and routed with iproute2. Packet I/O sits behind PacketDevice so
// that a faster device (batched reads and writes, offloads; another issue)
// can replace TunPacketDevice without touching the daemon.
import { execFile } from "node:child_process";
import { TunDevice, type TunError, tunAvailable } from "../tun";

/** Whole IP packets to and from the host's stack. */
export interface PacketDevice {
  readonly name: string;
  /** Every packet the host routes into the device; reading starts now. */
  onPackets(cb: (packets: Uint8Array[]) => void): void;
  /** Packets for the host; copied before this returns (callers pass views into the engine's buffer). */
  write(packets: Uint8Array[]): void;
  /** Give the device the node's addresses, set it up, route the tailnet into it. */
  configure(addresses: readonly string[]): Promise<void>;
  /** Remove the device, and with it its addresses and routes. */
  close(): Promise<void>;
}

/** The tailnet's ranges, routed into the device. */
export const TAILNET_ROUTES = ["100.64.0.0/10", "fd7a:115c:a1e0::/48"] as const;
/** The device's MTU: WireGuard's overhead kept under 1,360 bytes on any path (as Tailscale's 1,280). */
export const TUN_MTU = 1280;
const IP_TIMEOUT_MS = 10_000;

export class HostError extends Error {
  override readonly name = "HostError";
}

/** Run `ip` (iproute2), bounded; a failure is a HostError with its stderr. */
export function ip(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile("ip", args, { timeout: IP_TIMEOUT_MS, killSignal: "SIGKILL" }, (err, _out, stderr) => {
      if (!err) return resolve();
      reject(
        new HostError(`ip ${args.join(" ")} failed: ${String(stderr).trim() || err.message}`, { cause: err }),
      );
    });
  });
}

/**
 * Give TUN device `dev` the node's addresses (`100.64.0.5/32`, `fd7a:…/128`),
 * set it up, and route the tailnet's ranges into it.
 */
export async function configureTun(dev: string, addresses: readonly string[]): Promise<void> {
  await ip(["link", "set", "dev", dev, "mtu", String(TUN_MTU), "up"]);
  for (const a of addresses) {
    const v6 = a.includes(":");
    // nodad: the address is ours alone (no neighbours on a TUN), usable at once.
    await ip([...(v6 ? ["-6"] : []), "addr", "replace", a, "dev", dev, ...(v6 ? ["nodad"] : [])]);
  }
  for (const r of TAILNET_ROUTES)
    await ip([...(r.includes(":") ? ["-6"] : []), "route", "replace", r, "dev", dev]);
}

/** A PacketDevice on a Linux TUN interface (gateway/src/tun.ts), one packet per read and write. */
export class TunPacketDevice implements PacketDevice {
  private constructor(private readonly tun: TunDevice) {}

  get name(): string {
    return this.tun.name;
  }

  get stats(): TunDevice["stats"] {
    return this.tun.stats;
  }

  /** Open `name`; throws HostError saying why TUN mode cannot work here (not root, no addon). */
  static open(name: string, onError: (err: TunError) => void): TunPacketDevice {
    const avail = tunAvailable();
    if (!avail.ok) throw new HostError(`TUN mode is not available: ${avail.reason} (or use --userspace)`);
    const tun = TunDevice.open(name);
    tun.onError(onError);
    return new TunPacketDevice(tun);
  }

  onPackets(cb: (packets: Uint8Array[]) => void): void {
    this.tun.onPacket((p) => cb([p]));
  }

  write(packets: Uint8Array[]): void {
    for (const p of packets) this.tun.write(p);
  }

  /**
   * Give the device the node's addresses (`100.64.0.5/32`, `fd7a:…/128`),
   * set it up, and route the tailnet's ranges into it.
   */
  configure(addresses: readonly string[]): Promise<void> {
    return configureTun(this.tun.name, addresses);
  }

  close(): Promise<void> {
    return this.tun.close();
  }
}
