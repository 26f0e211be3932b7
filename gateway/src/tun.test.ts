import { type ChildProcess, spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNamespace, execIn, netnsAvailable, removeNamespace } from "./testing/netns";
import { MAX_PENDING_WRITES, TunDevice, TunError, tunAvailable } from "./tun";

// The TUN device against the real kernel, inside a namespace of the test's
// own: the device is opened by a child process in that namespace
// (testing/tun-bridge.ts) and the test drives the kernel's side with ping and
// reads the kernel's answers to packets it writes.

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BRIDGE = fileURLToPath(new URL("./testing/tun-bridge.ts", import.meta.url));
const WAIT_MS = 10_000;

const tun = tunAvailable();
const netns = netnsAvailable();
const skipReason = !tun.ok ? tun.reason : !netns.ok ? netns.reason : undefined;
if (skipReason) console.warn(`skipping TUN device tests: ${skipReason}`);

describe("TunDevice.open validation", () => {
  it.each(["", "a/b", "sixteen-chars-xx", "tun 0", "tün0"])(
    "rejects the name %j before any system call",
    (n) => {
      expect(() => TunDevice.open(n)).toThrow(TunError);
      expect(() => TunDevice.open(n)).toThrow(/1-15 characters/);
    },
  );
});

// --- packets ---------------------------------------------------------------

function checksum(buf: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < buf.length; i += 2) sum += (buf[i]! << 8) | (buf[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function ipBytes(ip: string): number[] {
  return ip.split(".").map(Number);
}

/** An IPv4 packet carrying ICMP echo (type 8) or echo reply (type 0), checksums filled in. */
function icmpEcho(opts: {
  src: string;
  dst: string;
  type: 0 | 8;
  id: number;
  seq: number;
  payload: Uint8Array;
}) {
  const icmp = new Uint8Array(8 + opts.payload.length);
  const iv = new DataView(icmp.buffer);
  icmp[0] = opts.type;
  iv.setUint16(4, opts.id);
  iv.setUint16(6, opts.seq);
  icmp.set(opts.payload, 8);
  iv.setUint16(2, checksum(icmp));
  const pkt = new Uint8Array(20 + icmp.length);
  const pv = new DataView(pkt.buffer);
  pkt[0] = 0x45; // version 4, 5-word header
  pv.setUint16(2, pkt.length);
  pv.setUint16(4, randomInt(0, 0x10000)); // identification
  pv.setUint16(6, 0x4000); // don't fragment
  pkt[8] = 64; // TTL
  pkt[9] = 1; // ICMP
  pkt.set(ipBytes(opts.src), 12);
  pkt.set(ipBytes(opts.dst), 16);
  pv.setUint16(10, checksum(pkt.subarray(0, 20)));
  pkt.set(icmp, 20);
  return pkt;
}

interface ParsedIcmp {
  src: string;
  dst: string;
  type: number;
  id: number;
  seq: number;
  payload: Uint8Array;
  ipChecksumOk: boolean;
  icmpChecksumOk: boolean;
}

function parseIcmp(pkt: Uint8Array): ParsedIcmp | null {
  if (pkt.length < 28 || pkt[0]! >> 4 !== 4 || pkt[9] !== 1) return null;
  const ihl = (pkt[0]! & 0x0f) * 4;
  const dv = new DataView(pkt.buffer, pkt.byteOffset, pkt.byteLength);
  const icmp = pkt.subarray(ihl, dv.getUint16(2));
  return {
    src: pkt.subarray(12, 16).join("."),
    dst: pkt.subarray(16, 20).join("."),
    type: icmp[0]!,
    id: (icmp[4]! << 8) | icmp[5]!,
    seq: (icmp[6]! << 8) | icmp[7]!,
    payload: icmp.slice(8),
    ipChecksumOk: checksum(pkt.subarray(0, ihl)) === 0,
    icmpChecksumOk: checksum(icmp) === 0,
  };
}

// --- the bridge child ------------------------------------------------------

interface BridgeMsg {
  type: string;
  hex?: string;
  name?: string;
  message?: string;
  code?: string;
  count?: number;
  txPackets?: number;
  txDropped?: number;
  txErrors?: number;
}

/** The tun-bridge child: messages in order, and waiting for one that matches. */
class Bridge {
  readonly child: ChildProcess;
  readonly messages: BridgeMsg[] = [];
  stderr = "";
  readonly exited: Promise<number | null>;
  #waiters = new Set<() => void>();

  constructor(ns: string, ifname: string) {
    this.child = spawn("ip", ["netns", "exec", ns, process.execPath, "--import", "tsx", BRIDGE, ifname], {
      cwd: ROOT,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let buf = "";
    this.child.stdout!.on("data", (chunk: Buffer) => {
      buf += chunk.toString("utf8");
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        this.messages.push(JSON.parse(buf.slice(0, nl)) as BridgeMsg);
        buf = buf.slice(nl + 1);
      }
      this.#waiters.forEach((w) => w());
    });
    this.child.stderr!.on("data", (chunk: Buffer) => (this.stderr += chunk.toString("utf8")));
    this.exited = new Promise((resolve) => this.child.once("exit", (code) => resolve(code)));
    void this.exited.then(() => this.#waiters.forEach((w) => w()));
  }

  send(msg: BridgeMsg): void {
    this.child.stdin!.write(`${JSON.stringify(msg)}\n`);
  }

  /** The first message from index `from` on that satisfies `pred`, waiting at most WAIT_MS. */
  waitFor(what: string, pred: (m: BridgeMsg) => boolean, from = 0): Promise<BridgeMsg> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = this.messages.slice(from).find(pred);
        if (hit) return done(() => resolve(hit));
        const err = this.messages.find((m) => m.type === "error");
        if (err) return done(() => reject(new Error(`tun-bridge failed: ${err.message}`)));
        if (this.child.exitCode !== null || this.child.signalCode !== null) {
          return done(() => reject(new Error(`tun-bridge exited while waiting for ${what}: ${this.stderr}`)));
        }
      };
      const timer = setTimeout(
        () =>
          done(() => reject(new Error(`timed out after ${WAIT_MS} ms waiting for ${what}; ${this.stderr}`))),
        WAIT_MS,
      );
      const done = (f: () => void) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        f();
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** The ICMP packets the kernel sent into the device, from message index `from` on. */
  waitForIcmp(what: string, pred: (p: ParsedIcmp) => boolean, from = 0): Promise<ParsedIcmp> {
    return this.waitFor(
      what,
      (m) => {
        if (m.type !== "packet" || !m.hex) return false;
        const p = parseIcmp(Buffer.from(m.hex, "hex"));
        return p !== null && pred(p);
      },
      from,
    ).then((m) => parseIcmp(Buffer.from(m.hex!, "hex"))!);
  }
}

describe.skipIf(skipReason !== undefined)("TunDevice in a network namespace", () => {
  let ns: string | undefined;
  let bridge: Bridge | undefined;
  const n = randomInt(0, 256);
  const tunIp = `10.77.${n}.1`;
  const remoteIp = `10.77.${n}.2`;
  const ifname = "trltun0";

  beforeAll(async () => {
    ns = createNamespace("trl-tun-");
    bridge = new Bridge(ns, ifname);
    const ready = await bridge.waitFor("the device to open", (m) => m.type === "ready");
    expect(ready.name).toBe(ifname);
    await execIn(ns, "ip", ["addr", "add", `${tunIp}/24`, "dev", ifname]);
    await execIn(ns, "ip", ["link", "set", ifname, "up"]);
  });

  afterAll(async () => {
    // Normally the last test has closed the device; this is for failures.
    if (bridge && bridge.child.exitCode === null) {
      bridge.child.kill("SIGKILL");
      await Promise.race([bridge.exited, new Promise((r) => setTimeout(r, 2000))]);
    }
    if (ns) removeNamespace(ns);
  });

  it("receives the kernel's ICMP echo request sent to an address behind the device", async () => {
    const from = bridge!.messages.length;
    // Nobody answers, so ping exits 1: only the packet it sends matters here.
    const ping = execIn(ns!, "ping", ["-c", "1", "-W", "1", remoteIp]).catch(() => undefined);
    const req = await bridge!.waitForIcmp(
      "the echo request",
      (p) => p.type === 8 && p.dst === remoteIp,
      from,
    );
    expect(req.src).toBe(tunIp);
    expect(req.ipChecksumOk).toBe(true);
    expect(req.icmpChecksumOk).toBe(true);
    await ping;
  });

  it("writes an echo request to the device's own address and reads the kernel's reply", async () => {
    const from = bridge!.messages.length;
    const id = randomInt(1, 0x10000);
    const payload = new TextEncoder().encode("trellis tun test payload 0123456789");
    const pkt = icmpEcho({ src: remoteIp, dst: tunIp, type: 8, id, seq: 7, payload });
    bridge!.send({ type: "write", hex: Buffer.from(pkt).toString("hex") });
    const reply = await bridge!.waitForIcmp("the echo reply", (p) => p.type === 0 && p.id === id, from);
    expect(reply).toMatchObject({
      src: tunIp,
      dst: remoteIp,
      seq: 7,
      ipChecksumOk: true,
      icmpChecksumOk: true,
    });
    expect(Buffer.from(reply.payload).toString()).toBe(Buffer.from(payload).toString());
  });

  it("drops and counts writes beyond the pending-write bound", async () => {
    const from = bridge!.messages.length;
    // Echo replies nobody asked for: the kernel takes them and answers nothing.
    const pkt = icmpEcho({ src: remoteIp, dst: tunIp, type: 0, id: 1, seq: 1, payload: new Uint8Array(32) });
    const count = MAX_PENDING_WRITES + 500;
    bridge!.send({ type: "burst", hex: Buffer.from(pkt).toString("hex"), count });
    const stats = await bridge!.waitFor("the burst to settle", (m) => m.type === "stats", from);
    // One write goes out at once, MAX_PENDING_WRITES wait behind it, the rest are dropped.
    expect(stats).toMatchObject({ txDropped: count - 1 - MAX_PENDING_WRITES, txErrors: 0 });
    expect(stats.txPackets).toBeGreaterThanOrEqual(1 + MAX_PENDING_WRITES);
  });

  it("reports the kernel's errno text when the name is taken", async () => {
    const from = bridge!.messages.length;
    bridge!.send({ type: "open", name: ifname });
    const res = await bridge!.waitFor("the second open to fail", (m) => m.type.startsWith("open"), from);
    expect(res).toMatchObject({
      type: "open-error",
      code: "EBUSY",
      message: `tun open ${ifname}: TUNSETIFF ${ifname}: Device or resource busy`,
    });
  });

  it("close() ends the parked read and removes the interface", async () => {
    const started = Date.now();
    bridge!.child.stdin!.end();
    await bridge!.waitFor("the device to close", (m) => m.type === "closed");
    expect(await bridge!.exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(WAIT_MS);
    const links = (await execIn(ns!, "ip", ["-o", "link", "show"])).stdout;
    expect(links).not.toContain(ifname);
  });
});
