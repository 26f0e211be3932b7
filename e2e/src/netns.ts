import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";

// Network namespaces that a test creates for itself and removes again: only
// addresses inside 10.77.0.0/16 and only between namespaces of this test.

export const canUseNetns =
  process.getuid?.() === 0 &&
  (() => {
    try {
      execFileSync("ip", ["netns", "list"], { stdio: "ignore" });
      execFileSync("nft", ["--version"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  })();

/**
 * Delete namespace `ns` (and with it its veth pairs), ending first whatever
 * still runs in it: a daemon a failed test left is the test's own. Nothing
 * to do when it is gone already.
 */
function removeNetns(ns: string): void {
  let pids: string[];
  try {
    pids = run("ip", ["netns", "pids", ns]).split(/\s+/).filter(Boolean);
  } catch {
    return; // gone already
  }
  for (const pid of pids) process.kill(Number(pid), "SIGKILL");
  run("ip", ["netns", "del", ns]);
}

function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, {
    encoding: "utf8",
    input,
    stdio: ["pipe", "pipe", "pipe"],
    timeout: 10_000,
  });
}

/**
 * A client host behind a masquerading NAT router, both namespaces, reaching the
 * host's root namespace:
 *
 *   root ns  hostIp (10.77.N.1) ──veth── router ns 10.77.N.2 │ 10.77.N+1.1 ──veth── client ns clientIp (10.77.N+1.2)
 *
 * Traffic from the client to the host leaves the router with the router's
 * address, so a STUN server on the host sees the NAT's mapping.
 */
export interface NatTopology {
  hostIp: string;
  routerIp: string;
  clientIp: string;
  clientNs: string;
  /** An executable that runs its arguments inside the client namespace. */
  execInClient: string;
  /**
   * The router forwards no UDP either way (WebRTC's ICE, STUN and data
   * channels), as a corporate firewall that allows only TCP; `remove()` opens it again.
   */
  blockUdp(): { remove(): void };
  remove(): void;
}

/**
 * Names and addresses for one test topology: `id` for its namespaces and
 * interfaces (short enough for interface names, distinct across processes),
 * and `n`, an even third octet so that 10.77.n.0/24 and 10.77.(n+1).0/24 are
 * its own.
 */
export function topologyIds(): { id: string; n: number } {
  return {
    id: `${process.pid % 1000}${Math.floor(Math.random() * 1000)}`,
    n: 10 + 2 * Math.floor(Math.random() * 120),
  };
}

export function createNatTopology(): NatTopology {
  const { id, n } = topologyIds();
  const routerNs = `trl-nat-${id}`;
  const clientNs = `trl-cli-${id}`;
  const [hv, rv1, rv2, cv] = [`trh${id}`, `trr${id}`, `trs${id}`, `trc${id}`];
  const hostIp = `10.77.${n}.1`;
  const routerIp = `10.77.${n}.2`;
  const routerInner = `10.77.${n + 1}.1`;
  const clientIp = `10.77.${n + 1}.2`;
  const dir = mkdtempSync(join(tmpdir(), "trellis-netns-"));
  const remove = () => {
    for (const args of [
      ["netns", "del", clientNs],
      ["netns", "del", routerNs],
      ["link", "del", hv],
    ]) {
      try {
        run("ip", args);
      } catch {
        // already gone (deleting a namespace removes its veth ends too)
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    run("ip", ["netns", "add", routerNs]);
    run("ip", ["netns", "add", clientNs]);
    run("ip", ["link", "add", hv, "type", "veth", "peer", "name", rv1, "netns", routerNs]);
    run("ip", ["addr", "add", `${hostIp}/24`, "dev", hv]);
    run("ip", ["link", "set", hv, "up"]);
    run("ip", ["-n", routerNs, "link", "add", rv2, "type", "veth", "peer", "name", cv, "netns", clientNs]);
    run("ip", ["-n", routerNs, "addr", "add", `${routerIp}/24`, "dev", rv1]);
    run("ip", ["-n", routerNs, "addr", "add", `${routerInner}/24`, "dev", rv2]);
    for (const l of ["lo", rv1, rv2]) run("ip", ["-n", routerNs, "link", "set", l, "up"]);
    run("ip", ["-n", clientNs, "addr", "add", `${clientIp}/24`, "dev", cv]);
    for (const l of ["lo", cv]) run("ip", ["-n", clientNs, "link", "set", l, "up"]);
    // A default route, so Chromium finds an interface to gather candidates on.
    run("ip", ["-n", clientNs, "route", "add", "default", "via", routerInner]);
    run("ip", ["netns", "exec", routerNs, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    run(
      "ip",
      ["netns", "exec", routerNs, "nft", "-f", "-"],
      `table ip nat {\n  chain post {\n    type nat hook postrouting priority 100;\n    oifname "${rv1}" masquerade\n  }\n}\n`,
    );
    const execInClient = join(dir, "in-client-ns");
    writeFileSync(execInClient, `#!/bin/sh\nexec ip netns exec ${clientNs} "$@"\n`);
    chmodSync(execInClient, 0o755);
    const blockUdp = () => {
      run(
        "ip",
        ["netns", "exec", routerNs, "nft", "-f", "-"],
        `table inet trlblock {\n  chain block_udp {\n    type filter hook forward priority 0;\n    meta l4proto udp drop\n  }\n}\n`,
      );
      return {
        remove: () =>
          void run("ip", ["netns", "exec", routerNs, "nft", "delete", "table", "inet", "trlblock"]),
      };
    };
    return { hostIp, routerIp, clientIp, clientNs, execInClient, blockUdp, remove };
  } catch (err) {
    remove();
    throw err;
  }
}

/** One host behind its own masquerading NAT router (see {@link createDoubleNatTopology}). */
export interface NattedHost {
  /** The host's namespace, and its (private) address there. */
  ns: string;
  ip: string;
  /** The router's public address: the host's traffic leaves with it. */
  publicIp: string;
  /** The router's namespace. */
  router: string;
  /**
   * The router drops all forwarded UDP (`family` "ip": IPv4 only) until
   * `remove()` (TCP, and with it the relay, still works).
   */
  blockUdp(family?: "inet" | "ip"): { remove(): void };
}

export interface DoubleNatTopology {
  hostIp: string;
  a: NattedHost;
  b: NattedHost;
  /**
   * Route IPv6 to both hosts, without NAT, as an ISP with IPv6 does: each
   * router gets fd77:N::2 or ::3 on the shared segment and a /64 for its
   * host (fd77:N:a::/64, fd77:N:b::/64). Returns the hosts' addresses.
   */
  addIpv6(): { a: string; b: string };
  remove(): void;
}

/**
 * Two hosts, each behind a masquerading NAT router of its own, whose public
 * sides share one segment (a bridge in an "internet" namespace) with the
 * root namespace, where the server, relay and STUN run:
 *
 *   root ns hostIp 10.77.N.1 ─┐
 *   router A 10.77.N.2 ───────┼─ bridge (internet ns)      router A │ 10.77.N+1.1 ── host A 10.77.N+1.2
 *   router B 10.77.N.3 ───────┘                            router B │ 10.77.N+1.1 ── host B 10.77.N+1.2
 *
 * Both LANs use the same private prefix, as home and office LANs often do,
 * so only a path through both NATs joins the hosts. Masquerade keeps a
 * host's source port and lets in only answers to what went out (Linux
 * conntrack): the hosts reach each other directly only by opening both
 * NATs at once.
 */
/**
 * A segment shared with the root namespace: a bridge in an "internet"
 * namespace, the root namespace on it at 10.77.N.1/24. `ns` makes a
 * namespace that `remove` deletes (ending whatever runs in it); `attach`
 * puts a namespace on the segment as `dev` with `address`/24.
 */
function segment(): {
  id: string;
  n: number;
  hostIp: string;
  ns(name: string): void;
  attach(name: string, dev: string, address: string): void;
  remove(): void;
} {
  const { id, n } = topologyIds();
  const inet = `trl-inet-${id}`;
  const hostIp = `10.77.${n}.1`;
  const rootVeth = `trh${id}`;
  const made: string[] = [];
  let ports = 0;
  const remove = () => {
    for (const ns of made.reverse()) {
      try {
        // Whatever still runs in it (a daemon a failed test left) is the test's own: end it.
        const pids = run("ip", ["netns", "pids", ns]).split(/\s+/).filter(Boolean);
        for (const pid of pids) process.kill(Number(pid), "SIGKILL");
        run("ip", ["netns", "del", ns]);
      } catch {
        // already gone
      }
    }
    try {
      run("ip", ["link", "del", rootVeth]);
    } catch {
      // went with the internet namespace
    }
  };
  const ns = (name: string) => {
    run("ip", ["netns", "add", name]);
    made.push(name);
    run("ip", ["-n", name, "link", "set", "lo", "up"]);
  };
  try {
    ns(inet);
    run("ip", ["-n", inet, "link", "add", "br0", "type", "bridge"]);
    run("ip", ["-n", inet, "link", "set", "br0", "up"]);
    run("ip", ["link", "add", rootVeth, "type", "veth", "peer", "name", "root", "netns", inet]);
    run("ip", ["-n", inet, "link", "set", "root", "master", "br0", "up"]);
    run("ip", ["addr", "add", `${hostIp}/24`, "dev", rootVeth]);
    run("ip", ["link", "set", rootVeth, "up"]);
  } catch (err) {
    remove();
    throw err;
  }
  const attach = (name: string, dev: string, address: string) => {
    const port = `port${ports++}`;
    run("ip", ["-n", name, "link", "add", dev, "type", "veth", "peer", "name", port, "netns", inet]);
    run("ip", ["-n", inet, "link", "set", port, "master", "br0", "up"]);
    run("ip", ["-n", name, "addr", "add", `${address}/24`, "dev", dev]);
    run("ip", ["-n", name, "link", "set", dev, "up"]);
  };
  return { id, n, hostIp, ns, attach, remove };
}

type Segment = ReturnType<typeof segment>;

/**
 * A host behind a masquerading NAT router of its own, the router's public
 * side on `seg` at `publicIp`; the host is .2 and the router .1 of
 * 10.77.N+1.0/`bits` inside (every NAT's inside uses that same prefix).
 */
function nattedHost(seg: Segment, side: string, publicIp: string, bits = 24): NattedHost {
  const { id, n, ns, attach } = seg;
  const router = `trl-nat${side}-${id}`;
  const host = `trl-host${side}-${id}`;
  ns(router);
  ns(host);
  attach(router, "wan", publicIp);
  run("ip", ["-n", router, "link", "add", "lan", "type", "veth", "peer", "name", "eth0", "netns", host]);
  run("ip", ["-n", router, "addr", "add", `10.77.${n + 1}.1/${bits}`, "dev", "lan"]);
  run("ip", ["-n", router, "link", "set", "lan", "up"]);
  run("ip", ["-n", host, "addr", "add", `10.77.${n + 1}.2/${bits}`, "dev", "eth0"]);
  run("ip", ["-n", host, "link", "set", "eth0", "up"]);
  run("ip", ["-n", host, "route", "add", "default", "via", `10.77.${n + 1}.1`]);
  run("ip", ["netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  run(
    "ip",
    ["netns", "exec", router, "nft", "-f", "-"],
    // As a home router's firewall, nothing new comes in from outside to
    // the router itself. That also keeps an unsolicited datagram from
    // leaving a conntrack entry which would make masquerade change the
    // source port of the host's own datagram to that sender (and no
    // NAT traversal would ever succeed).
    `table ip nat {\n  chain post {\n    type nat hook postrouting priority 100;\n    oifname "wan" masquerade\n  }\n}\n` +
      `table inet fw {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    iifname "wan" ct state new drop\n  }\n}\n`,
  );
  return {
    ns: host,
    ip: `10.77.${n + 1}.2`,
    publicIp,
    router,
    blockUdp: (family = "inet") => {
      run(
        "ip",
        ["netns", "exec", router, "nft", "-f", "-"],
        `table ${family} trlblock {\n  chain block_udp {\n    type filter hook forward priority 0;\n    meta l4proto udp drop\n  }\n}\n`,
      );
      return {
        remove: () => void run("ip", ["netns", "exec", router, "nft", "delete", "table", family, "trlblock"]),
      };
    },
  };
}

export function createDoubleNatTopology(): DoubleNatTopology {
  const seg = segment();
  try {
    const a = nattedHost(seg, "a", `10.77.${seg.n}.2`);
    const b = nattedHost(seg, "b", `10.77.${seg.n}.3`);
    const addIpv6 = () => {
      const net = `fd77:${seg.n}`;
      const sites = [
        { h: a, side: "a", wan: `${net}::2`, other: { side: "b", wan: `${net}::3` } },
        { h: b, side: "b", wan: `${net}::3`, other: { side: "a", wan: `${net}::2` } },
      ];
      for (const { h, side, wan, other } of sites) {
        const ip6 = (ns: string, ...args: string[]) => run("ip", ["-6", "-n", ns, ...args]);
        run("ip", ["netns", "exec", h.router, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
        ip6(h.router, "addr", "add", `${wan}/64`, "dev", "wan", "nodad");
        ip6(h.router, "addr", "add", `${net}:${side}::1/64`, "dev", "lan", "nodad");
        ip6(h.router, "route", "add", `${net}:${other.side}::/64`, "via", other.wan);
        ip6(h.ns, "addr", "add", `${net}:${side}::2/64`, "dev", "eth0", "nodad");
        ip6(h.ns, "route", "add", "default", "via", `${net}:${side}::1`);
      }
      return { a: `${net}:a::2`, b: `${net}:b::2` };
    };
    return { hostIp: seg.hostIp, a, b, addIpv6, remove: seg.remove };
  } catch (err) {
    seg.remove();
    throw err;
  }
}

/** The whole of the user journeys' world (see {@link createJourneyTopology}). */
export interface JourneyTopology {
  /** The root namespace on the "internet": the web app, relay, STUN and the OpenID provider listen here. */
  hostIp: string;
  /** Two homes, each a browser host behind a NAT of its own, with a default route. */
  homes: [NattedHost, NattedHost];
  /** The office gateway's server, behind the office's NAT. */
  gateway: NattedHost;
  /** The office LAN behind the gateway (`lan` there): lanNs at lanHostIp, with no route to anything else. */
  lanNs: string;
  lanPrefix: string;
  lanHostIp: string;
  /** A second server, behind a NAT of its own, that reaches the office gateway. */
  server: NattedHost;
  /** An executable that runs `program` with its arguments inside `ns` (for Playwright, which takes a path). */
  execIn(ns: string, program: string): string;
  remove(): void;
}

/**
 * The user journeys' world, one "internet" segment with the root namespace
 * (10.77.N.1) and four NAT routers on it, each with one host inside
 * (10.77.N+1.2/25 behind each, the same private address everywhere):
 *
 *   home A, home B   browser hosts (Chromium runs there)
 *   office           the gateway's server; its second interface `lan`
 *                    (10.77.N+1.129/25) leads to the office LAN host
 *                    (10.77.N+1.130), which has no route to anything else
 *   server           a server that reaches the office gateway
 *
 * Created in a few hundred milliseconds; `remove` ends whatever still runs in
 * the namespaces and deletes them, so a second run starts clean.
 */
export function createJourneyTopology(): JourneyTopology {
  const seg = segment();
  const dir = mkdtempSync(join(tmpdir(), "trellis-journey-ns-"));
  const remove = () => {
    seg.remove();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const { n } = seg;
    const homes: [NattedHost, NattedHost] = [
      nattedHost(seg, "a", `10.77.${n}.2`, 25),
      nattedHost(seg, "b", `10.77.${n}.3`, 25),
    ];
    const gateway = nattedHost(seg, "o", `10.77.${n}.4`, 25);
    const server = nattedHost(seg, "s", `10.77.${n}.5`, 25);
    const lanNs = `trl-lan-${seg.id}`;
    seg.ns(lanNs);
    run("ip", [
      "-n",
      gateway.ns,
      "link",
      "add",
      "lan",
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      lanNs,
    ]);
    run("ip", ["-n", gateway.ns, "addr", "add", `10.77.${n + 1}.129/25`, "dev", "lan"]);
    run("ip", ["-n", gateway.ns, "link", "set", "lan", "up"]);
    run("ip", ["-n", lanNs, "addr", "add", `10.77.${n + 1}.130/25`, "dev", "eth0"]);
    run("ip", ["-n", lanNs, "link", "set", "eth0", "up"]);
    const execIn = (ns: string, program: string) => {
      const file = join(dir, `in-${ns}-${basename(program)}`);
      writeFileSync(file, `#!/bin/sh\nexec ip netns exec ${ns} ${program} "$@"\n`);
      chmodSync(file, 0o755);
      return file;
    };
    return {
      hostIp: seg.hostIp,
      homes,
      gateway,
      lanNs,
      lanPrefix: `10.77.${n + 1}.128/25`,
      lanHostIp: `10.77.${n + 1}.130`,
      server,
      execIn,
      remove,
    };
  } catch (err) {
    remove();
    throw err;
  }
}

export interface ExitTopology {
  hostIp: string;
  /** The exit node's namespace (10.77.N.2 on the segment), with the "internet" behind it. */
  exitNs: string;
  /** A host only the exit node reaches (the internet, as far as the client is concerned). */
  webNs: string;
  webIp: string;
  /** The client's namespace (10.77.N.3 on the segment): no default route, so no way to webIp but the exit node. */
  clientNs: string;
  remove(): void;
}

/**
 *   root ns 10.77.N.1 ─┬─ exit ns 10.77.N.2 │ 10.77.N+1.1 ── web ns 10.77.N+1.2
 *                      └─ client ns 10.77.N.3
 */
export function createExitTopology(): ExitTopology {
  const { id, n, hostIp, ns, attach, remove } = segment();
  try {
    const exitNs = `trl-exit-${id}`;
    const webNs = `trl-web-${id}`;
    const clientNs = `trl-client-${id}`;
    for (const name of [exitNs, webNs, clientNs]) ns(name);
    attach(exitNs, "wan", `10.77.${n}.2`);
    attach(clientNs, "eth0", `10.77.${n}.3`);
    run("ip", ["-n", exitNs, "link", "add", "lan", "type", "veth", "peer", "name", "eth0", "netns", webNs]);
    run("ip", ["-n", exitNs, "addr", "add", `10.77.${n + 1}.1/24`, "dev", "lan"]);
    run("ip", ["-n", exitNs, "link", "set", "lan", "up"]);
    run("ip", ["-n", webNs, "addr", "add", `10.77.${n + 1}.2/24`, "dev", "eth0"]);
    run("ip", ["-n", webNs, "link", "set", "eth0", "up"]);
    return { hostIp, exitNs, webNs, webIp: `10.77.${n + 1}.2`, clientNs, remove };
  } catch (err) {
    remove();
    throw err;
  }
}

export interface GatewayTopology {
  name: string;
  hostIp: string;
  /** A LAN behind the gateway: lanNs at lanHostIp in lanPrefix, with no route to the tailnet. */
  lanNs: string;
  lanPrefix: string;
  lanHostIp: string;
  /** The LAN link's interface names: in the gateway namespace, and in the LAN's. */
  lanLink: { gateway: string; lan: string };
  remove(): void;
}

/**
 *   root ns hostIp (10.77.N.1) ──veth── gateway ns 10.77.N.2 │ 10.77.N+1.1 ──veth── lan ns lanHostIp (10.77.N+1.2)
 *
 * The LAN host has no route to the tailnet: only masquerade at the gateway gets its answers back.
 */
export function createGatewayTopology(): GatewayTopology {
  const { id, n } = topologyIds();
  const name = `trl-gw-${id}`;
  const lanNs = `trl-lan-${id}`;
  const [hv, gv, gl, lv] = [`trgh${id}`, `trgg${id}`, `trgl${id}`, `trll${id}`];
  const hostIp = `10.77.${n}.1`;
  const ip = (...args: string[]) => execFileSync("ip", args, { stdio: "pipe", timeout: 10_000 });
  const remove = () => {
    removeNetns(lanNs);
    removeNetns(name);
  };
  try {
    ip("netns", "add", name);
    ip("netns", "add", lanNs);
    ip("-n", name, "link", "set", "lo", "up");
    ip("-n", lanNs, "link", "set", "lo", "up");
    ip("link", "add", hv, "type", "veth", "peer", "name", gv, "netns", name);
    ip("addr", "add", `${hostIp}/24`, "dev", hv);
    ip("link", "set", hv, "up");
    ip("-n", name, "addr", "add", `10.77.${n}.2/24`, "dev", gv);
    ip("-n", name, "link", "set", gv, "up");
    ip("-n", name, "link", "add", gl, "type", "veth", "peer", "name", lv, "netns", lanNs);
    ip("-n", name, "addr", "add", `10.77.${n + 1}.1/24`, "dev", gl);
    ip("-n", name, "link", "set", gl, "up");
    ip("-n", lanNs, "addr", "add", `10.77.${n + 1}.2/24`, "dev", lv);
    ip("-n", lanNs, "link", "set", lv, "up");
    return {
      name,
      hostIp,
      lanNs,
      lanPrefix: `10.77.${n + 1}.0/24`,
      lanHostIp: `10.77.${n + 1}.2`,
      lanLink: { gateway: gl, lan: lv },
      remove,
    };
  } catch (err) {
    remove();
    throw err;
  }
}

/** A host of its own beside a gateway topology's gateway (see {@link attachToGateway}). */
export interface AttachedHost {
  ns: string;
  /** Its address; the gateway's address it reaches is `gatewayIp`. */
  ip: string;
  gatewayIp: string;
  remove(): void;
}

/**
 * A namespace wired straight to the gateway of `topo` by a veth pair of its
 * own, on /32 host routes inside the topology's 10.77.N.0/24 (so no new
 * prefix is taken): the host reaches the gateway's address 10.77.N.2, and
 * nothing else — a remote site whose only way in is the gateway's UDP port.
 */
export function attachToGateway(topo: GatewayTopology, name: string): AttachedHost {
  const n = /^10\.77\.(\d+)\.1$/.exec(topo.hostIp)?.[1];
  if (!n) throw new Error(`unexpected topology host address ${topo.hostIp}`);
  const id = topo.name.replace(/^trl-gw-/, "");
  const ns = `trl-${name}-${id}`.slice(0, 40);
  const [gv, hv] = [`trga${id}`, `trha${id}`];
  const ip = `10.77.${n}.200`;
  const gatewayIp = `10.77.${n}.2`;
  const run = (...args: string[]) => execFileSync("ip", args, { stdio: "pipe", timeout: 10_000 });
  const remove = () => removeNetns(ns);
  try {
    run("netns", "add", ns);
    run("-n", ns, "link", "set", "lo", "up");
    run("-n", topo.name, "link", "add", gv, "type", "veth", "peer", "name", hv, "netns", ns);
    run("-n", topo.name, "link", "set", gv, "up");
    run("-n", topo.name, "route", "add", `${ip}/32`, "dev", gv);
    run("-n", ns, "addr", "add", `${ip}/32`, "dev", hv);
    run("-n", ns, "link", "set", hv, "up");
    run("-n", ns, "route", "add", `${gatewayIp}/32`, "dev", hv);
    return { ns, ip, gatewayIp, remove };
  } catch (err) {
    remove();
    throw err;
  }
}
