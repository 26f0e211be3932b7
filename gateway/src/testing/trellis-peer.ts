// A Trellis WireGuard peer in its own process (run inside a test's network
// namespace): TUN + UDP + either data plane — the WASM device in Node
// (default), or the native data plane (`"dataplane": "native"`, the addon
// owns TUN and UDP on its own threads). Configured by one JSON argument;
// answers JSON-line commands on stdin: {"cmd":"stats"}, {"cmd":"advance","ms":N}
// (moves its clock forward, to reach rekey times without waiting; WASM only:
// the native threads read the real clock), {"cmd":"stop"}.
import { createInterface } from "node:readline";
import { execFileSync } from "node:child_process";
import { createLogger } from "@trellis/log";
import { TunDevice } from "../tun";
import { UdpWireGuard } from "../dataplane/udp-peer";
import { NativeWireGuard } from "../dataplane/native-peer";

interface Config {
  privateKey: string; // base64
  listen: { host: string; port: number };
  ifname: string;
  address: string; // e.g. 100.64.0.2/32
  peers: { publicKey: string; endpoint?: string; allowedIps: string[]; presharedKey?: string }[];
  dataplane?: "wasm" | "native";
  /** The TUN device's MTU (default 1420, wireguard-go's). */
  mtu?: number;
}

const cfg = JSON.parse(process.argv[2]!) as Config;
const b64 = (s: string) => new Uint8Array(Buffer.from(s, "base64"));
let offset = 0;
const reply = (o: unknown) => process.stdout.write(JSON.stringify(o) + "\n");

function configure(name: string): void {
  execFileSync("ip", ["addr", "add", cfg.address, "dev", name]);
  execFileSync("ip", ["link", "set", name, "mtu", String(cfg.mtu ?? 1420), "up"]);
  for (const p of cfg.peers) {
    for (const a of p.allowedIps) execFileSync("ip", ["route", "replace", a, "dev", name]);
  }
}

const peers = cfg.peers.map((p) => ({
  publicKey: b64(p.publicKey),
  presharedKey: p.presharedKey ? b64(p.presharedKey) : undefined,
  endpoint: p.endpoint,
  allowedIps: p.allowedIps,
}));

let stats: () => unknown;
let stop: () => Promise<void>;
let publicKey: Uint8Array;
if (cfg.dataplane === "native") {
  const wg = new NativeWireGuard({
    privateKey: b64(cfg.privateKey),
    tun: cfg.ifname,
    port: cfg.listen.port,
    peers,
  });
  configure(wg.tunName);
  publicKey = wg.dp.engine.publicKey;
  stats = () => ({ stats: wg.stats(), drops: {} });
  stop = () => {
    wg.close();
    return Promise.resolve();
  };
} else {
  const tun = TunDevice.open(cfg.ifname);
  configure(tun.name);
  const wg = await UdpWireGuard.start({
    privateKey: b64(cfg.privateKey),
    listen: cfg.listen,
    tun,
    log: createLogger("trellis-peer"),
    clock: () => Date.now() + offset,
    peers,
  });
  publicKey = wg.device.publicKey;
  stats = () => ({ stats: wg.device.stats(), drops: Object.fromEntries(wg.drops) });
  stop = async () => {
    await wg.close();
    await tun.close();
  };
}
reply({ ready: true, publicKey: Buffer.from(publicKey).toString("base64") });

createInterface({ input: process.stdin }).on("line", (line) => {
  const msg = JSON.parse(line) as { cmd: string; ms?: number };
  if (msg.cmd === "stats") reply(stats());
  else if (msg.cmd === "advance") {
    offset += msg.ms ?? 0;
    reply({ advanced: offset });
  } else if (msg.cmd === "stop") {
    void (async () => {
      await stop();
      reply({ stopped: true });
      process.exit(0);
    })();
  }
});
