// A Trellis WireGuard peer in its own process (run inside a test's network
// namespace): TUN + UDP + the WASM device. Configured by one JSON argument;
// answers JSON-line commands on stdin: {"cmd":"stats"}, {"cmd":"advance","ms":N}
// (moves its clock forward, to reach rekey times without waiting), {"cmd":"stop"}.
import { createInterface } from "node:readline";
import { execFileSync } from "node:child_process";
import { createLogger } from "@trellis/log";
import { TunDevice } from "../tun";
import { UdpWireGuard } from "../dataplane/udp-peer";

interface Config {
  privateKey: string; // base64
  listen: { host: string; port: number };
  ifname: string;
  address: string; // e.g. 100.64.0.2/32
  peers: { publicKey: string; endpoint?: string; allowedIps: string[]; presharedKey?: string }[];
}

const cfg = JSON.parse(process.argv[2]!) as Config;
const b64 = (s: string) => new Uint8Array(Buffer.from(s, "base64"));
let offset = 0;

const tun = TunDevice.open(cfg.ifname);
execFileSync("ip", ["addr", "add", cfg.address, "dev", tun.name]);
execFileSync("ip", ["link", "set", tun.name, "mtu", "1420", "up"]);
for (const p of cfg.peers) {
  for (const a of p.allowedIps) execFileSync("ip", ["route", "replace", a, "dev", tun.name]);
}
const wg = await UdpWireGuard.start({
  privateKey: b64(cfg.privateKey),
  listen: cfg.listen,
  tun,
  log: createLogger("trellis-peer"),
  clock: () => Date.now() + offset,
  peers: cfg.peers.map((p) => ({
    publicKey: b64(p.publicKey),
    presharedKey: p.presharedKey ? b64(p.presharedKey) : undefined,
    endpoint: p.endpoint,
    allowedIps: p.allowedIps,
  })),
});
const reply = (o: unknown) => process.stdout.write(JSON.stringify(o) + "\n");
reply({ ready: true, publicKey: Buffer.from(wg.device.publicKey).toString("base64") });

createInterface({ input: process.stdin }).on("line", (line) => {
  const msg = JSON.parse(line) as { cmd: string; ms?: number };
  if (msg.cmd === "stats") reply({ stats: wg.device.stats(), drops: Object.fromEntries(wg.drops) });
  else if (msg.cmd === "advance") {
    offset += msg.ms ?? 0;
    reply({ advanced: offset });
  } else if (msg.cmd === "stop") {
    void (async () => {
      await wg.close();
      await tun.close();
      reply({ stopped: true });
      process.exit(0);
    })();
  }
});
