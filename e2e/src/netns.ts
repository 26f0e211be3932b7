import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

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
