import { existsSync, read, write } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

// A Linux TUN device for the gateway: whole IPv4/IPv6 packets in and out, no
// packet-information header. The device is opened by our own N-API addon
// (native/tun.c, built by scripts/setup.mjs) and then read and written with
// node:fs on its file descriptor. Addresses, MTU and link state are the
// caller's business (`ip addr`, `ip link`).
//
// Reading: the descriptor is blocking, so one fs.read at a time parks one
// libuv threadpool thread in read(2) until a packet arrives; that costs one
// of the pool's threads (UV_THREADPOOL_SIZE, 4 by default) for as long as the
// device is open, and no CPU. Closing the descriptor does not wake that
// thread, so close() first removes the interface (the kernel then fails the
// read), waits for the I/O in flight, and only then releases the descriptor
// number: a read or write still queued for the pool must never land on a
// file that reused the number.

/** The largest packet the device hands out or accepts (an IPv4 total length). */
export const MAX_PACKET = 65535;
/** Writes waiting beyond this many are dropped and counted (`stats.txDropped`). */
export const MAX_PENDING_WRITES = 1024;
/** How long close() waits for a read or write in flight before giving up on it. */
const CLOSE_WAIT_MS = 2000;

const ADDON_PATH = fileURLToPath(new URL("../build/Release/trellis_tun.node", import.meta.url));
const TUN_PATH = "/dev/net/tun";
/** Linux's EBADFD, which libuv has no name for ("Unknown system error -77"). */
const EBADFD = 77;

export type TunOperation = "load" | "open" | "read" | "write" | "close";

/** A TUN failure, with the operation and the interface it concerns. */
export class TunError extends Error {
  override readonly name = "TunError";
  readonly op: TunOperation;
  readonly ifname: string | undefined;
  /** The errno name (ENOENT, EPERM, …) when a system call failed. */
  readonly code: string | undefined;

  constructor(op: TunOperation, ifname: string | undefined, message: string, cause?: unknown) {
    super(`tun ${op}${ifname ? ` ${ifname}` : ""}: ${message}`, cause === undefined ? undefined : { cause });
    this.op = op;
    this.ifname = ifname;
    const code = (cause as { code?: unknown } | undefined)?.code;
    // Only errno names: libuv reports errors it cannot name as "Unknown system error -N".
    this.code = typeof code === "string" && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
  }
}

/** What native/tun.c exports. */
interface TunAddon {
  open(name: string): { fd: number; name: string; ifindex: number };
  detach(fd: number, ifindex: number): boolean;
  close(fd: number): void;
}

let addon: TunAddon | undefined;

function loadAddon(): TunAddon {
  if (addon) return addon;
  if (!existsSync(ADDON_PATH)) {
    throw new TunError(
      "load",
      undefined,
      `the native addon is not built (${ADDON_PATH}); run \`npm run setup\` (needs a C compiler)`,
    );
  }
  try {
    addon = createRequire(import.meta.url)(ADDON_PATH) as TunAddon;
  } catch (err) {
    throw new TunError("load", undefined, `cannot load ${ADDON_PATH}: ${errorMessage(err)}`, err);
  }
  return addon;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Whether TUN devices can be opened here, and why not: the addon is built,
 * the process is root (CAP_NET_ADMIN, in practice) and /dev/net/tun exists.
 * For skipping tests and for a clear startup message.
 */
export function tunAvailable(): { ok: boolean; reason?: string } {
  if (process.platform !== "linux")
    return { ok: false, reason: `TUN devices need Linux, not ${process.platform}` };
  if (!existsSync(ADDON_PATH)) {
    return {
      ok: false,
      reason: `native addon not built (${ADDON_PATH}); run npm run setup with a C compiler`,
    };
  }
  if (process.getuid?.() !== 0) return { ok: false, reason: "opening a TUN device needs root" };
  if (!existsSync(TUN_PATH)) return { ok: false, reason: `${TUN_PATH} does not exist` };
  try {
    loadAddon();
  } catch (err) {
    return { ok: false, reason: errorMessage(err) };
  }
  return { ok: true };
}

export interface TunStats {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  /** Packets dropped because MAX_PENDING_WRITES were already waiting. */
  txDropped: number;
  /** Packets the kernel refused (each also reported to onError). */
  txErrors: number;
}

type IoCallback = (err: NodeJS.ErrnoException | null, n: number) => void;

/** An open TUN interface; see the top of this file for how I/O works. */
export class TunDevice {
  /** The interface name the kernel gave the device. */
  readonly name: string;
  readonly stats: TunStats = {
    rxPackets: 0,
    rxBytes: 0,
    txPackets: 0,
    txBytes: 0,
    txDropped: 0,
    txErrors: 0,
  };

  readonly #fd: number;
  readonly #ifindex: number;
  readonly #addon: TunAddon;
  readonly #readBuf = Buffer.allocUnsafe(MAX_PACKET);
  #packetCb: ((pkt: Uint8Array) => void) | undefined;
  #errorCb: ((err: TunError) => void) | undefined;
  #reading = false;
  #readInFlight = false;
  #queue: Uint8Array[] = [];
  #writeInFlight = false;
  #closing = false;
  #closed: Promise<void> | undefined;
  /** Wakes close() when the read or write in flight completes. */
  #ioSettled: (() => void) | undefined;
  readonly #onExit = () => this.#detachSync();

  private constructor(addon: TunAddon, fd: number, name: string, ifindex: number) {
    this.#addon = addon;
    this.#fd = fd;
    this.name = name;
    this.#ifindex = ifindex;
    // process.exit() with a read parked in the threadpool would hang while
    // libuv joins its threads: remove the interface synchronously first.
    process.on("exit", this.#onExit);
  }

  /**
   * Create (or attach to) the TUN interface `name` (1–15 of [A-Za-z0-9_.-]) in
   * this process's network namespace. The interface is down and unaddressed.
   */
  static open(name: string): TunDevice {
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) {
      throw new TunError("open", name, "the name must be 1-15 characters of [A-Za-z0-9_.-]");
    }
    const native = loadAddon();
    let res: { fd: number; name: string; ifindex: number };
    try {
      res = native.open(name);
    } catch (err) {
      throw new TunError("open", name, errorMessage(err), err);
    }
    return new TunDevice(native, res.fd, res.name, res.ifindex);
  }

  /** Receive every packet the kernel routes to the interface (one callback; reading starts now). */
  onPacket(cb: (pkt: Uint8Array) => void): void {
    this.#packetCb = cb;
    if (!this.#reading && !this.#closing) {
      this.#reading = true;
      this.#readNext();
    }
  }

  /**
   * Receive errors: a failed read (which ends reading, e.g. when the interface
   * was deleted under us) or a packet the kernel refused. Without a handler
   * they are thrown, as an EventEmitter's unhandled "error" is.
   */
  onError(cb: (err: TunError) => void): void {
    this.#errorCb = cb;
  }

  /**
   * Queue one IPv4 or IPv6 packet for the kernel. The bytes are copied (the
   * write happens later, on the threadpool), so the caller may reuse its buffer.
   */
  write(pkt: Uint8Array): void {
    if (this.#closing) throw new TunError("write", this.name, "the device is closed");
    if (pkt.length === 0 || pkt.length > MAX_PACKET) {
      throw new TunError("write", this.name, `a packet must be 1-${MAX_PACKET} bytes, not ${pkt.length}`);
    }
    const version = pkt[0]! >> 4;
    if (version !== 4 && version !== 6) {
      // The kernel would refuse it with EINVAL; say why instead.
      throw new TunError("write", this.name, `not an IP packet (version nibble ${version})`);
    }
    if (!this.#writeInFlight) {
      this.#writeNow(pkt.slice());
      return;
    }
    if (this.#queue.length >= MAX_PENDING_WRITES) {
      this.stats.txDropped++;
      return;
    }
    this.#queue.push(pkt.slice());
  }

  /**
   * Remove the interface and release the descriptor. Resolves once no read or
   * write is in flight any more; queued writes are discarded.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    this.#queue = [];
    let detached: boolean;
    try {
      detached = this.#addon.detach(this.#fd, this.#ifindex);
    } catch (err) {
      // Keep the descriptor: closing it with a read parked on it could let a
      // later request hit a reused number. The exit hook stays for a retry.
      this.#closing = false;
      this.#closed = undefined;
      throw new TunError("close", this.name, `cannot remove the interface: ${errorMessage(err)}`, err);
    }
    process.off("exit", this.#onExit);
    const settled = await this.#waitForIo(CLOSE_WAIT_MS);
    try {
      this.#addon.close(this.#fd);
    } catch (err) {
      throw new TunError("close", this.name, errorMessage(err), err);
    }
    if (!settled) {
      // Only possible when the interface could not be removed (it was moved
      // to another namespace or renamed): the kernel keeps it, and one pool
      // thread, until a packet arrives for it.
      throw new TunError(
        "close",
        this.name,
        `I/O still pending after ${CLOSE_WAIT_MS} ms${detached ? "" : " (the interface was no longer ours to remove)"}`,
      );
    }
  }

  #waitForIo(timeoutMs: number): Promise<boolean> {
    if (!this.#readInFlight && !this.#writeInFlight) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#ioSettled = undefined;
        resolve(false);
      }, timeoutMs);
      this.#ioSettled = () => {
        if (this.#readInFlight || this.#writeInFlight) return;
        clearTimeout(timer);
        this.#ioSettled = undefined;
        resolve(true);
      };
    });
  }

  #detachSync(): void {
    try {
      this.#addon.detach(this.#fd, this.#ifindex);
    } catch (err) {
      // At exit there is nobody left to tell but stderr.
      process.stderr.write(
        `trellis: cannot remove TUN interface ${this.name} at exit: ${errorMessage(err)}\n`,
      );
    }
  }

  #readNext(): void {
    this.#readInFlight = true;
    const done: IoCallback = (err, n) => {
      this.#readInFlight = false;
      if (this.#closing) {
        this.#ioSettled?.();
        return;
      }
      if (err) {
        // EINTR/EAGAIN are retried; anything else ends reading for good.
        if (err.code === "EINTR" || err.code === "EAGAIN") {
          this.#readNext();
          return;
        }
        this.#reading = false;
        // EFAULT/EBADFD are how the kernel fails reads once the interface is gone.
        const gone = err.code === "EFAULT" || err.errno === -EBADFD;
        this.#report(
          new TunError("read", this.name, gone ? "the interface was removed" : errorMessage(err), err),
        );
        return;
      }
      if (n > 0) {
        // A fresh copy: the read buffer is reused for the next packet at once.
        const pkt = new Uint8Array(n);
        pkt.set(this.#readBuf.subarray(0, n));
        this.stats.rxPackets++;
        this.stats.rxBytes += n;
        // Read again before delivering, so a throwing callback cannot stall the device.
        this.#readNext();
        this.#packetCb?.(pkt);
        return;
      }
      this.#readNext();
    };
    read(this.#fd, this.#readBuf, 0, MAX_PACKET, null, done);
  }

  #writeNow(pkt: Uint8Array): void {
    this.#writeInFlight = true;
    write(this.#fd, pkt, 0, pkt.length, null, (err, n) => {
      this.#writeInFlight = false;
      if (this.#closing) {
        this.#ioSettled?.();
        return;
      }
      if (err) {
        this.stats.txErrors++;
      } else {
        this.stats.txPackets++;
        this.stats.txBytes += n;
      }
      const next = this.#queue.shift();
      if (next) this.#writeNow(next);
      // Reported after the next write is under way, so a throwing handler cannot stall the queue.
      if (err) this.#report(new TunError("write", this.name, errorMessage(err), err));
    });
  }

  #report(err: TunError): void {
    if (this.#errorCb) this.#errorCb(err);
    else throw err;
  }
}
