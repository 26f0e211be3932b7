// Using an exit node (TUN mode, `--exit-node PEER`): traffic for the
// internet leaves through the tailnet, the way Tailscale does it on Linux,
// with policy routing instead of touching the main table:
//
//   pref 5200  to <bypass address>            lookup main     the control server, relays, peers' UDP endpoints
//   pref 5230  lookup main suppress_prefixlength 0            every specific route (LAN, tailnet) as before
//   pref 5270  lookup 7345                                    table 7345: default dev <tun>
//
// So the default route alone changes; the daemon's own traffic (control,
// relay, STUN, direct UDP to peers) goes out as before — Node's sockets
// cannot carry a firewall mark, so it is recognised by destination — and
// hosts on connected networks stay reachable. Everything is removed on down;
// a crash leaves rules that the next start removes before adding its own.
import { execFile } from "node:child_process";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { Logger } from "@trellis/log";
import { HostError } from "./host";
import { Serial } from "./serial";

export const EXIT_TABLE = 7345;
const PREF_BYPASS = 5200;
const PREF_MAIN = 5230;
const PREF_TABLE = 5270;
const IP_TIMEOUT_MS = 10_000;
/** Bypass rules at most (the control server, relays and every peer's endpoints fit easily). */
const MAX_BYPASS = 512;

function ipCmd(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("ip", args, { timeout: IP_TIMEOUT_MS, killSignal: "SIGKILL" }, (err, out, stderr) => {
      if (!err) return resolve(String(out));
      reject(
        new HostError(`ip ${args.join(" ")} failed: ${String(stderr).trim() || err.message}`, { cause: err }),
      );
    });
  });
}

/** The addresses of `hosts` (names are looked up; literals kept), each family's own. */
export async function addressesOf(hosts: readonly string[]): Promise<string[]> {
  const out = new Set<string>();
  await Promise.all(
    hosts.map(async (h) => {
      const bare = h.replace(/^\[|\]$/g, "");
      if (isIP(bare)) return void out.add(bare);
      try {
        for (const a of await lookup(bare, { all: true })) out.add(a.address);
      } catch {
        // An unresolvable name cannot be reached anyway: nothing to keep out of the tunnel.
      }
    }),
  );
  return [...out].sort();
}

export class ExitRoutes {
  private active: { v4: boolean; v6: boolean } | null = null;
  private bypass: string[] = [];
  private readonly serial = new Serial();
  /** The last failure, for status; null when the routing matches what was asked. */
  error: string | null = null;

  constructor(
    private readonly tun: string,
    private readonly log: Logger,
  ) {}

  /** Whether the default route goes through the exit node now. */
  get routing(): boolean {
    return this.active !== null;
  }

  /**
   * Route the internet through the TUN device for the families the exit node
   * offers (none: stop), keeping `bypass` (addresses) outside; calls run one
   * after another.
   */
  update(families: { v4: boolean; v6: boolean } | null, bypass: string[]): Promise<void> {
    return this.serial.run(() => this.apply(families, bypass.slice(0, MAX_BYPASS).sort()));
  }

  private async apply(families: { v4: boolean; v6: boolean } | null, bypass: string[]): Promise<void> {
    if (families && !families.v4 && !families.v6) families = null;
    const same =
      JSON.stringify(families) === JSON.stringify(this.active) &&
      JSON.stringify(bypass) === JSON.stringify(this.bypass) &&
      this.error === null;
    if (same) return;
    try {
      await removeAll();
      this.active = null;
      this.bypass = [];
      if (families) {
        for (const a of bypass) {
          const v6 = a.includes(":");
          if (v6 ? !families.v6 : !families.v4) continue;
          await ipCmd([
            v6 ? "-6" : "-4",
            "rule",
            "add",
            "to",
            a,
            "lookup",
            "main",
            "pref",
            String(PREF_BYPASS),
          ]);
        }
        for (const [fam, on] of [
          ["-4", families.v4],
          ["-6", families.v6],
        ] as const) {
          if (!on) continue;
          await ipCmd([fam, "route", "replace", "default", "dev", this.tun, "table", String(EXIT_TABLE)]);
          await ipCmd([
            fam,
            "rule",
            "add",
            "lookup",
            "main",
            "suppress_prefixlength",
            "0",
            "pref",
            String(PREF_MAIN),
          ]);
          await ipCmd([fam, "rule", "add", "lookup", String(EXIT_TABLE), "pref", String(PREF_TABLE)]);
        }
        this.active = families;
        this.bypass = bypass;
        this.log.info({ families, bypass }, "internet traffic goes through the exit node");
      } else {
        this.log.info({}, "internet traffic no longer goes through an exit node");
      }
      this.error = null;
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
      this.log.error({ err: this.error }, "could not route through the exit node");
      // Half-made routing is worse than none: take it all away.
      await removeAll().catch(() => undefined);
      this.active = null;
      throw err;
    }
  }

  /** Stop routing through the exit node (waits for a change in progress). */
  close(): Promise<void> {
    return this.update(null, []);
  }
}

/**
 * Remove every rule at Trellis's prefs and empty its table, in both
 * families; whatever a previous daemon left is gone too.
 */
export async function removeAll(): Promise<void> {
  for (const fam of ["-4", "-6"]) {
    for (const pref of [PREF_BYPASS, PREF_MAIN, PREF_TABLE]) {
      // `ip rule del pref N` removes one rule at a time; a bounded loop ends at "No such file".
      for (let i = 0; i <= MAX_BYPASS; i++) {
        try {
          await ipCmd([fam, "rule", "del", "pref", String(pref)]);
        } catch {
          break;
        }
      }
    }
    try {
      await ipCmd([fam, "route", "flush", "table", String(EXIT_TABLE)]);
    } catch {
      // No table yet (or no IPv6 on this host): nothing to flush.
    }
  }
}
