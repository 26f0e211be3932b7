// The native data plane's TypeScript face (gateway/dataplane: the wasm/
// WireGuard crate built for the host as a Node addon). The addon owns the
// TUN device and the UDP socket on its own threads and moves WireGuard
// traffic on direct UDP paths without JS; this module gives the node engine
// what it expects from the WASM engine (the same binding calls and records),
// a UdpSocket over the addon's socket (disco, STUN and unproven senders come
// up here), a PacketDevice for the daemon, and the hooks through which the
// engine names each peer's trusted direct path.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { fileURLToPath } from "node:url";
import type { NativeHooks } from "@trellis/client/node";
import { reachableAddresses } from "@trellis/client/node";
import type { UdpAddr, UdpSocket } from "@trellis/client";
import { addrFromBytes, formatAddr } from "@trellis/proto/ip";
import { concatBatch, engineOver, type WgEngineBinding } from "@trellis/wasm/node";
import type { WireGuardEngine } from "@trellis/wasm";
import { configureTun, type PacketDevice } from "../daemon/host";

export const NATIVE_ADDON_PATH = fileURLToPath(
  new URL("../../build/Release/trellis_dataplane.node", import.meta.url),
);

/** The addon's class (gateway/dataplane/src/node.rs). */
interface NativeBinding extends WgEngineBinding {
  readonly tun_name: string;
  readonly port: number;
  readonly tso: boolean;
  io_error(): string | null;
  set_direct(handle: number, address: string, port: number): void;
  take_active(): number[];
  take_udp(): Uint8Array;
  send_udp(data: Uint8Array, address: string, port: number): boolean;
  write_tun(packets: Uint8Array, lens: Uint32Array): number;
  set_echo_ident(ident: number): void;
}

interface NativeAddon {
  NativeDataplane: {
    new (
      privateKey: Uint8Array,
      seed: Uint8Array,
      tunName: string,
      udpPort: number,
      offload: boolean,
      onWake: () => void,
    ): NativeBinding;
    drop_reason_name(code: number): string;
  };
}

export class NativeDataplaneError extends Error {
  override readonly name = "NativeDataplaneError";
}

let addon: NativeAddon | undefined;

/** Load the addon; a NativeDataplaneError says why it cannot be used here. */
export function loadNative(): NativeAddon {
  if (addon) return addon;
  if (process.platform !== "linux")
    throw new NativeDataplaneError(`it is built for Linux only (this is ${process.platform})`);
  if (!existsSync(NATIVE_ADDON_PATH)) {
    throw new NativeDataplaneError(
      `the addon is not built (${NATIVE_ADDON_PATH}); run \`npm run setup\` (needs cargo)`,
    );
  }
  try {
    addon = createRequire(import.meta.url)(NATIVE_ADDON_PATH) as NativeAddon;
  } catch (err) {
    throw new NativeDataplaneError(`cannot load ${NATIVE_ADDON_PATH}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return addon;
}

/** Whether the native data plane can run here, and if not why. */
export function nativeAvailable(): { ok: true } | { ok: false; reason: string } {
  try {
    loadNative();
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
}

/** Records of `take_udp`: address length n (4 or 16), address, port (u16 BE), length (u32 LE), data. */
export function splitUdp(buf: Uint8Array, fn: (data: Uint8Array, from: UdpAddr) => void): void {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0;
  while (off + 1 <= buf.length) {
    const n = buf[off]!;
    if ((n !== 4 && n !== 16) || off + 1 + n + 6 > buf.length) return;
    const address = formatAddr(addrFromBytes(buf.subarray(off + 1, off + 1 + n))!);
    const port = dv.getUint16(off + 1 + n);
    const len = dv.getUint32(off + 3 + n, true);
    const at = off + 7 + n;
    fn(buf.subarray(at, at + len), { address, port });
    off = at + len;
  }
}

/**
 * The native data plane for one daemon session: TUN `tunName`, UDP `port`
 * (0: any free one), the engine for `privateKey`. Hand `engine`, `udp`,
 * `hooks` to the node engine and `device` to the daemon; `kick` is the node
 * engine's (it runs a turn, whose engine call carries what waits for JS).
 */
export class NativeDataplane {
  private readonly b: NativeBinding;
  readonly engine: WireGuardEngine;
  readonly udp: UdpSocket;
  readonly hooks: NativeHooks;
  readonly device: NativePacketDevice;
  private onUdp: (data: Uint8Array, from: UdpAddr) => void = () => undefined;
  private kick: () => void = () => undefined;
  private ioErrorHandler: (message: string) => void = () => undefined;
  private ioErrorSeen = false;
  private closed = false;
  /** Datagrams JS could not send (name lookups that failed), by reason. */
  readonly drops: Record<string, number> = {};

  /**
   * `offload` (default on; TRELLIS_TUN_OFFLOAD=0 turns it off): the TUN
   * device hands over TCP super-packets (IFF_VNET_HDR, TSO), cut into
   * MTU-sized packets natively before encryption, as wireguard-go does.
   */
  constructor(privateKey: Uint8Array, tunName: string, port: number, opts: { offload?: boolean } = {}) {
    const { NativeDataplane: Binding } = loadNative();
    const seed = globalThis.crypto.getRandomValues(new Uint8Array(32));
    const offload = opts.offload ?? process.env.TRELLIS_TUN_OFFLOAD !== "0";
    this.b = new Binding(privateKey, seed, tunName, port, offload, () => this.wake());
    this.engine = engineOver(this.b, (code) => Binding.drop_reason_name(code)) as WireGuardEngine;
    this.hooks = {
      setDirect: (h, addr) => this.b.set_direct(h, addr?.address ?? "", addr?.port ?? 0),
      takeActive: () => this.b.take_active(),
      setEchoIdent: (ident) => this.b.set_echo_ident(ident),
    };
    this.udp = {
      port: this.b.port,
      send: (data, to) => this.sendUdp(data, to),
      onMessage: (fn) => {
        this.onUdp = fn;
      },
      localAddresses: () => reachableAddresses(),
      // The socket lives as long as the data plane (closed with the device).
      close: () => undefined,
    };
    this.device = new NativePacketDevice(this.b.tun_name, this.b, () => this.close());
  }

  /** Run `kick` whenever the data plane has something for the engine. */
  onWake(kick: () => void): void {
    this.kick = kick;
  }

  /** Whether the kernel hands the device TSO super-packets. */
  get tso(): boolean {
    return this.b.tso;
  }

  /** Why an I/O thread stopped, if one did (the device is then gone). */
  get ioError(): string | null {
    return this.b.io_error();
  }

  /** Called once if an I/O thread stops (the device or the socket failed): the data plane no longer moves packets. */
  onIoError(fn: (message: string) => void): void {
    this.ioErrorHandler = fn;
  }

  private wake(): void {
    if (this.closed) return;
    const err = this.b.io_error();
    if (err && !this.ioErrorSeen) {
      this.ioErrorSeen = true;
      this.ioErrorHandler(err);
    }
    splitUdp(this.b.take_udp(), (data, from) => this.onUdp(data, from));
    this.kick();
  }

  private sendUdp(data: Uint8Array, to: UdpAddr): void {
    if (this.closed) return;
    if (isIP(to.address)) {
      this.b.send_udp(data, to.address, to.port);
      return;
    }
    // A host name (a relay's STUN server): resolved per send, as node:dgram does.
    const copy = data.slice();
    lookup(to.address, { family: 4 }).then(
      (r) => {
        if (!this.closed) this.b.send_udp(copy, r.address, to.port);
      },
      () => {
        this.drops.udp_lookup_failed = (this.drops.udp_lookup_failed ?? 0) + 1;
      },
    );
  }

  /** Stop the threads; the TUN device (with its addresses and routes) and the socket close. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.b.free();
  }
}

/** The daemon's PacketDevice over the native data plane (it reads the device itself). */
export class NativePacketDevice implements PacketDevice {
  constructor(
    readonly name: string,
    private readonly b: NativeBinding,
    private readonly closeAll: () => void,
  ) {}

  /** The data plane reads the host's packets itself: nothing comes here. */
  onPackets(_cb: (packets: Uint8Array[]) => void): void {}

  write(packets: Uint8Array[]): void {
    if (packets.length === 0) return;
    const { buf, lens } = concatBatch(packets);
    this.b.write_tun(buf, lens);
  }

  configure(addresses: readonly string[]): Promise<void> {
    return configureTun(this.name, addresses);
  }

  close(): Promise<void> {
    this.closeAll();
    return Promise.resolve();
  }
}
