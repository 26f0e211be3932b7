import { randomBytes, randomInt } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createLinkedNamespaces,
  execIn,
  hasCommand,
  type LinkedNamespaces,
  netnsAvailable,
  spawnIn,
} from "./netns";
import {
  startWireguardGo,
  type WireguardGo,
  wgKeypair,
  wgPresharedKey,
  type WgKeypair,
  wireguardGoAvailable,
} from "./wireguard-go";

// Proves the interop harness against the real thing: two Debian wireguard-go
// peers in two linked namespaces pass pings and an iperf3 run. If this fails,
// interop tests built on the harness cannot be trusted.

function skipReason(): string | undefined {
  const netns = netnsAvailable();
  if (!netns.ok) return netns.reason;
  const wg = wireguardGoAvailable();
  if (!wg.ok) return wg.reason;
  const missing = ["iperf3", "ping"].filter((c) => !hasCommand(c));
  return missing.length ? `not installed: ${missing.join(", ")}` : undefined;
}
const reason = skipReason();
if (reason) console.warn(`skipping wireguard-go harness tests: ${reason}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(reason !== undefined)("wireguard-go harness", () => {
  let net: LinkedNamespaces | undefined;
  const peers: WireguardGo[] = [];
  let a: WireguardGo;
  let b: WireguardGo;
  let keyA: WgKeypair;
  let keyB: WgKeypair;
  const n = randomInt(0, 256);
  const tunA = `100.64.${n}.1`;
  const tunB = `100.64.${n}.2`;

  beforeAll(async () => {
    net = createLinkedNamespaces();
    keyA = wgKeypair();
    keyB = wgKeypair();
    const psk = wgPresharedKey();
    // Unique host-wide: the UAPI sockets share /var/run/wireguard.
    const id = randomBytes(3).toString("hex");
    a = await startWireguardGo({
      ns: net.nsA,
      ifname: `trlwa${id}`,
      privateKey: keyA.privateKey,
      listenPort: 51820,
      address: `${tunA}/32`,
      peers: [
        {
          publicKey: keyB.publicKey,
          endpoint: `${net.ipB}:51821`,
          allowedIps: [`${tunB}/32`],
          presharedKey: psk,
        },
      ],
    });
    peers.push(a);
    b = await startWireguardGo({
      ns: net.nsB,
      ifname: `trlwb${id}`,
      privateKey: keyB.privateKey,
      listenPort: 51821,
      address: `${tunB}/32`,
      peers: [
        {
          publicKey: keyA.publicKey,
          endpoint: `${net.ipA}:51820`,
          allowedIps: [`${tunA}/32`],
          presharedKey: psk,
          persistentKeepalive: 25,
        },
      ],
    });
    peers.push(b);
  });

  afterAll(async () => {
    // Everything is attempted; every failure is reported together.
    const errors = (await Promise.allSettled(peers.map((p) => p.stop())))
      .filter((r): r is PromiseRejectedResult => r.status === "rejected")
      .map((r) => r.reason as unknown);
    try {
      net?.remove();
    } catch (err) {
      errors.push(err);
    }
    if (errors.length) throw new AggregateError(errors, "cleaning up the wireguard-go harness failed");
  });

  it("configures the interface as asked", async () => {
    const dump = (await a.show()).trim().split("\n");
    const [iface, peer] = dump.map((l) => l.split("\t"));
    expect(iface?.[1]).toBe(keyA.publicKey);
    expect(iface?.[2]).toBe("51820");
    expect(peer?.[0]).toBe(keyB.publicKey);
    expect(peer?.[1]).not.toBe("(none)"); // the preshared key is set
    expect(peer?.[2]).toBe(`${net!.ipB}:51821`);
    expect(peer?.[3]).toBe(`${tunB}/32`);
    expect(peer?.[7]).toBe("off");
    const [, peerOfB] = (await b.show())
      .trim()
      .split("\n")
      .map((l) => l.split("\t"));
    expect(peerOfB?.[7]).toBe("25"); // persistent keepalive
  });

  it("reports an unknown peer as an error, not as no handshake", async () => {
    await expect(a.latestHandshake(wgKeypair().publicKey)).rejects.toThrow(/has no peer/);
  });

  it("pings across the tunnel both ways and completes a handshake", async () => {
    for (const [ns, dst] of [
      [net!.nsA, tunB],
      [net!.nsB, tunA],
    ] as const) {
      const { stdout } = await execIn(ns, "ping", ["-c", "3", "-i", "0.2", "-W", "2", dst], {
        timeoutMs: 15_000,
      });
      expect(stdout).toMatch(/3 packets transmitted, 3 received/);
    }
    // B's persistent keepalive may have completed the handshake before the
    // pings; either way both sides must have one now. Polled briefly rather
    // than relying on when wireguard-go records it.
    for (const [peer, key] of [
      [a, keyB.publicKey],
      [b, keyA.publicKey],
    ] as const) {
      let t = 0;
      for (let i = 0; i < 50 && t === 0; i++) {
        t = await peer.latestHandshake(key);
        if (t === 0) await sleep(100);
      }
      expect(t).toBeGreaterThan(Date.now() / 1000 - 120);
    }
    expect(a.logs()).toMatch(/handshake/i);
  });

  it("carries an iperf3 TCP stream", async () => {
    const port = String(randomInt(20_000, 30_000));
    // --forceflush: into a pipe, iperf3 would buffer "Server listening" away.
    const server = spawnIn(net!.nsB, "iperf3", ["-s", "-1", "--forceflush", "-B", tunB, "-p", port]);
    server.stdin?.end();
    let out = "";
    server.stdout?.on("data", (c: Buffer) => (out += c.toString()));
    server.stderr?.on("data", (c: Buffer) => (out += c.toString()));
    const serverExit = new Promise<number | null>((r) => server.once("exit", (code) => r(code)));
    try {
      for (let i = 0; !/Server listening/.test(out); i++) {
        if (i >= 100 || server.exitCode !== null) throw new Error(`iperf3 server did not start: ${out}`);
        await sleep(50);
      }
      const { stdout } = await execIn(net!.nsA, "iperf3", ["-c", tunB, "-p", port, "-t", "3", "-J"], {
        timeoutMs: 30_000,
      });
      const report = JSON.parse(stdout) as {
        error?: string;
        end?: { sum_sent?: { bits_per_second?: number }; sum_received?: { bits_per_second?: number } };
      };
      expect(report.error).toBeUndefined();
      const received = report.end?.sum_received?.bits_per_second ?? 0;
      console.info(
        `iperf3 over wireguard-go: ${(received / 1e6).toFixed(1)} Mbit/s received, ` +
          `${((report.end?.sum_sent?.bits_per_second ?? 0) / 1e6).toFixed(1)} Mbit/s sent`,
      );
      expect(received).toBeGreaterThan(0);
      expect(await Promise.race([serverExit, sleep(5_000).then(() => "timeout")])).toBe(0);
    } finally {
      if (server.exitCode === null && server.signalCode === null) server.kill("SIGKILL");
    }
  });
});
