// A TunDevice behind stdin/stdout, for tests that need the device inside a
// network namespace: they start this with `ip netns exec <ns> node --import
// tsx tun-bridge.ts <ifname>` (a namespace is per thread, and Node offers no
// setns, so a child process is the simple way in) and talk JSON lines:
//
//   out {"type":"ready","name":…}        the device is open
//   out {"type":"packet","hex":…}        the kernel sent a packet
//   in  {"type":"write","hex":…}         write a packet into the device
//   in  {"type":"open","name":…}         try to open another device; answers
//   out {"type":"opened","name":…} or {"type":"open-error","message":…,"code":…}
//   in  {"type":"burst","hex":…,"count":n} write the packet n times at once; when
//   out {"type":"stats",…TunStats}       every write has been sent or dropped
//   out {"type":"error","message":…}     a device error (exit 1 after it)
//   stdin closed                         close the device, print {"type":"closed"}, exit 0
import { createInterface } from "node:readline";
import { TunDevice, TunError } from "../tun";

function send(msg: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(msg)}\n`);
}

function fatal(err: unknown): never {
  send({ type: "error", message: err instanceof Error ? err.message : String(err) });
  process.exit(1);
}

const ifname = process.argv[2];
if (!ifname) fatal(new Error("usage: tun-bridge.ts <ifname>"));

let tun: TunDevice;
try {
  tun = TunDevice.open(ifname);
} catch (err) {
  fatal(err);
}
tun.onError(fatal);
tun.onPacket((pkt) => send({ type: "packet", hex: Buffer.from(pkt).toString("hex") }));
send({ type: "ready", name: tun.name });

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  try {
    const msg = JSON.parse(line) as { type?: string; hex?: string; name?: string; count?: number };
    if (msg.type === "write" && typeof msg.hex === "string") {
      tun.write(Buffer.from(msg.hex, "hex"));
    } else if (msg.type === "burst" && typeof msg.hex === "string" && typeof msg.count === "number") {
      const pkt = Buffer.from(msg.hex, "hex");
      const before = { ...tun.stats };
      for (let i = 0; i < msg.count; i++) tun.write(pkt);
      const settled = () =>
        tun.stats.txPackets +
          tun.stats.txDropped +
          tun.stats.txErrors -
          (before.txPackets + before.txDropped + before.txErrors) >=
        msg.count!;
      const poll = () => (settled() ? send({ type: "stats", ...tun.stats }) : setTimeout(poll, 10));
      poll();
    } else if (msg.type === "open" && typeof msg.name === "string") {
      try {
        const other = TunDevice.open(msg.name);
        send({ type: "opened", name: other.name });
        other.close().catch(fatal);
      } catch (err) {
        if (!(err instanceof TunError)) throw err;
        send({ type: "open-error", message: err.message, code: err.code });
      }
    } else {
      throw new Error(`unknown command: ${line}`);
    }
  } catch (err) {
    fatal(err);
  }
});
lines.on("close", () => {
  tun.close().then(() => {
    send({ type: "closed" });
    process.exit(0);
  }, fatal);
});
