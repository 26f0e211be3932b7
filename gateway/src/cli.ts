// trellis: the node daemon's command line.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { NodeIdentity } from "@trellis/client/node";
import { DAEMON_COMMANDS, runDaemonCommand } from "./commands";
import {
  compileFilters,
  compileSsh,
  parseHuJSON,
  parseTopology,
  PolicyError,
  validatePolicy,
} from "@trellis/policy";

const VERSION = "0.1.0";
const DEFAULT_STATE_DIR = process.env.TRELLIS_STATE_DIR ?? "/var/lib/trellis";

const USAGE = `usage: trellis <command> [options]

commands:
  up --login-server URL [--auth-key KEY|file:PATH] [--hostname H]
     [--advertise-routes CIDR,…] [--advertise-exit-node] [--accept-routes]
     [--exit-node PEER] [--userspace [--forward-tcp PORT,…]] [--tun NAME] [--port UDP]
     [--dataplane native|wasm]
                              join the tailnet: starts the daemon if none runs, registers
                              (the auth key also from TRELLIS_AUTH_KEY), waits for the map;
                              every setting not given goes back to its default
  set [--hostname H] [--advertise-routes CIDR,…] [--advertise-exit-node[=false]]
      [--accept-routes[=false]] [--exit-node PEER|--exit-node=]
                              change only the settings given on the running node (no new
                              machine; an empty --advertise-routes= withdraws them all)
  down                        stop the node (the daemon keeps running)
  status [--json]             this node, its peers (path, RTT, bytes, handshake) and drops
  ping PEER [--timeout S]     ICMP echo to a peer by name or address, with the path taken
  netcheck [--json]           UDP reachability, STUN-mapped endpoints, NAT behaviour, relay latencies
  logout                      log out at the control server and forget this node's key
  daemon [--socket-group G] [--metrics HOST:PORT]
                              run the node daemon in the foreground (up starts it for you);
                              --socket-group lets group G use its socket (0660),
                              --metrics serves Prometheus metrics at http://HOST:PORT/metrics
  version                     print the version
  key [--state-dir DIR]       print this node's public key (creating the key on first use)
  policy check FILE           check a policy file (HuJSON) and run its tests
  policy compile --policy FILE --topology TOPO.json
                              print each node's packet filter: {"<node>": [FilterRule…]}
  policy ssh --policy FILE --topology TOPO.json
                              print each node's SSH rules: {"<node>": [SSHRule…]}

Every command but policy takes --state-dir DIR. The state directory (default
${DEFAULT_STATE_DIR}, or TRELLIS_STATE_DIR) holds the node's private key (node.key,
mode 0600; it never leaves this machine), prefs.json, the daemon's socket
trellisd.sock (0600, or 0660 with --socket-group) and, when up started it, its
log trellisd.log. TUN mode (the default) needs root; --userspace needs none.
Direct paths to other gateways go over UDP port 41641 (--port; 0 or a taken
port: any free port), found by STUN at the relays and opened through NATs by
simultaneous pings. In TUN mode a native data plane (Rust, its own threads,
batched TUN and UDP I/O) moves the packets when its addon is built here;
--dataplane wasm picks the portable WASM engine instead.
`;

/** Like run, for every command: the daemon's commands are asynchronous. */
export async function main(
  argv: string[],
  out: (s: string) => void = (s) => process.stdout.write(s),
  err: (s: string) => void = (s) => process.stderr.write(s),
): Promise<number> {
  const [cmd, ...rest] = argv;
  const daemonCmd = DAEMON_COMMANDS.find((c) => c === cmd);
  if (daemonCmd) return runDaemonCommand(daemonCmd, rest, DEFAULT_STATE_DIR, out, err);
  return run(argv, out, err);
}

/**
 * Run one command. `out` and `err` receive standard output and error (tests
 * capture them). Returns the exit code: 0 success, 1 bad input, 2 usage error.
 */
export function run(
  argv: string[],
  out: (s: string) => void = (s) => process.stdout.write(s),
  err: (s: string) => void = (s) => process.stderr.write(s),
): number {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case "policy":
      return policyCommand(rest, out, err);
    case "version":
    case "--version":
      out(`trellis ${VERSION}\n`);
      return 0;
    case "key": {
      const { values } = parseArgs({
        args: rest,
        options: { "state-dir": { type: "string", default: DEFAULT_STATE_DIR } },
        strict: true,
      });
      const id = NodeIdentity.loadOrCreate(values["state-dir"]!);
      out(`${id.publicKey}\n`);
      return 0;
    }
    case undefined:
    case "help":
    case "--help":
    case "-h":
      out(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      err(`trellis: unknown command "${cmd}"\n\n${USAGE}`);
      return 2;
  }
}

const POLICY_USAGE = `usage:
  trellis policy check FILE
  trellis policy compile --policy FILE --topology TOPO.json
  trellis policy ssh --policy FILE --topology TOPO.json
`;

/** Bad input the user can fix: reported on stderr with exit code 1. */
class InputError extends Error {}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(
      `cannot read ${what} ${path}: ${code === "ENOENT" ? "no such file" : (e as Error).message}`,
    );
  }
}

function policyCommand(argv: string[], out: (s: string) => void, err: (s: string) => void): number {
  const [sub, ...rest] = argv;
  if (sub !== "check" && sub !== "compile" && sub !== "ssh") {
    err(sub === undefined ? POLICY_USAGE : `trellis policy: unknown command "${sub}"\n\n${POLICY_USAGE}`);
    return 2;
  }
  let values: { policy?: string; topology?: string };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: rest,
      options: { policy: { type: "string" }, topology: { type: "string" } },
      allowPositionals: sub === "check",
      strict: true,
    }));
  } catch (e) {
    err(`trellis policy ${sub}: ${(e as Error).message}\n\n${POLICY_USAGE}`);
    return 2;
  }
  const policyPath = sub === "check" ? positionals[0] : values.policy;
  if (!policyPath || (sub === "check" && (positionals.length !== 1 || values.topology || values.policy))) {
    err(
      `trellis policy ${sub}: ${sub === "check" ? "give exactly one policy FILE" : "--policy is required"}\n\n${POLICY_USAGE}`,
    );
    return 2;
  }
  if (sub !== "check" && !values.topology) {
    err(`trellis policy ${sub}: --topology is required\n\n${POLICY_USAGE}`);
    return 2;
  }
  try {
    const text = readText(policyPath, "policy");
    if (sub === "check") {
      const policy = validatePolicy(text, { source: policyPath });
      const tests = policy.tests.length + policy.sshTests.length;
      out(
        `${policyPath}: ok (${policy.rules.length} access rules, ${policy.ssh.length} ssh rules, ${tests} tests passed)\n`,
      );
      return 0;
    }
    const topoPath = values.topology!;
    const topology = parseTopology(parseHuJSON(readText(topoPath, "topology"), topoPath), topoPath);
    const policy = validatePolicy(text, { source: policyPath, topology });
    const result = sub === "compile" ? compileFilters(policy, topology) : compileSsh(policy, topology);
    out(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  } catch (e) {
    if (e instanceof PolicyError || e instanceof InputError) {
      err(
        `trellis policy ${sub}: ${e instanceof PolicyError && e.kind === "test" ? "policy tests failed:\n" : ""}${e.message}\n`,
      );
      return 1;
    }
    throw e;
  }
}
