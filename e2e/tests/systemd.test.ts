// The gateway installed as a Debian server's admin does it — `sudo
// gateway/packaging/install.sh`, then the `trellis up` the console prints —
// under a real systemd, with the unit's hardening in force. The machine
// running the tests has no systemd as PID 1, so the test boots one: this
// machine's own Debian tree in a systemd-nspawn container with a throw-away
// overlay (nothing it writes reaches the host), inside a network namespace
// the test creates, whose only link leads to the Trellis server.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPreAuthKey } from "@trellis/control";
import { nodeEngine } from "@trellis/client/node";
import type { NodeEngine } from "@trellis/client";
import { openDatabase, type Database } from "@trellis/db";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { canUseNetns, createGatewayTopology, type GatewayTopology } from "../src/netns";
import { ROOT, startTrellis, tempDataDir, type RunningTrellis } from "../src/server";
import { until as untilWithin } from "../src/wait";
import { tearDown } from "../src/teardown";

const until = <T>(what: string, fn: () => T | Promise<T>) => untilWithin(what, fn, 60_000);

const canBoot =
  canUseNetns &&
  existsSync("/usr/bin/systemd-nspawn") &&
  existsSync("/lib/systemd/systemd") &&
  existsSync("/dev/net/tun") &&
  existsSync(join(ROOT, "gateway/build/Release/trellis_tun.node"));
if (!canBoot)
  console.warn("skipping the systemd install test: needs root, ip netns, systemd-nspawn and the TUN addon");

/** Services of this machine's tree that the container has no use for (and that would listen in its namespace). */
/**
 * Where the container sees this tree: where an admin would clone it (install.sh refuses a
 * checkout under /tmp, which the service's PrivateTmp hides — and CI may clone there).
 */
const CHECKOUT = "/opt/trellis";
/** The same tree where install.sh must refuse it. */
const TMP_CHECKOUT = "/var/tmp/trellis";
const MASKED = ["ssh.service", "postgresql.service", "postgresql@15-main.service", "console-getty.service"];

let topo: GatewayTopology;
let trellis: RunningTrellis;
let db: Database;
let url: string;
const data = tempDataDir();
let rootView = "";
let nspawn: ChildProcess | undefined;
let leader = 0;
const engines: NodeEngine[] = [];

/** Run a command inside the container (all its namespaces), bounded. */
function inside(cmd: string[], input?: string): { code: number; out: string } {
  try {
    const out = execFileSync("nsenter", ["-t", String(leader), "-a", "--", ...cmd], {
      encoding: "utf8",
      input,
      timeout: 60_000,
      stdio: ["pipe", "pipe", "pipe"],
    });
    return { code: 0, out };
  } catch (err) {
    const e = err as { status?: number; stdout?: string; stderr?: string };
    if (typeof e.status !== "number") throw err;
    return { code: e.status, out: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

beforeAll(async () => {
  if (!canBoot) return;
  topo = createGatewayTopology();
  trellis = await startTrellis({ dataDir: data.dir, env: { HOST: topo.hostIp } });
  url = trellis.url.replace("127.0.0.1", topo.hostIp);
  db = await openDatabase(`file:${join(data.dir, "trellis.db")}`);

  // nspawn refuses "/" itself; a bind mount of it (this filesystem only) is the tree it boots.
  rootView = mkdtempSync(join(tmpdir(), "trellis-root-"));
  execFileSync("mount", ["--bind", "/", rootView]);
  const log = join(data.dir, "nspawn.log");
  nspawn = spawn(
    "sh",
    [
      "-c",
      `exec systemd-nspawn -q -D "$0" --volatile=overlay -M trl-sd --register=no --link-journal=no --keep-unit --capability=CAP_NET_ADMIN --bind="$1:${CHECKOUT}" --bind="$1:${TMP_CHECKOUT}" --network-namespace-path=/run/netns/"$2" -b -- ${MASKED.map((u) => `systemd.mask=${u}`).join(" ")} > "$3" 2>&1`,
      rootView,
      ROOT,
      topo.name,
      log,
    ],
    { stdio: "ignore" },
  );
  // The container's init is nspawn's child.
  leader = await until("the container's init", () => {
    let out: string;
    try {
      out = execFileSync("ps", ["-o", "pid=,comm=", "--ppid", String(nspawn!.pid)], { encoding: "utf8" });
    } catch {
      return null; // ps exits 1 while nspawn has no child yet
    }
    const kids = out
      .trim()
      .split("\n")
      .map((l) => l.trim().split(/\s+/));
    const init = kids.find(([, comm]) => comm === "systemd");
    return init ? Number(init[0]) : null;
  }).catch((err: unknown) => {
    throw new Error(`the container did not boot: ${readFileSync(log, "utf8").slice(-2000)}`, { cause: err });
  });
  // Its bus comes up a moment after init starts; then wait for the boot to finish.
  const state = await until("the container's boot", () => {
    const r = inside(["systemctl", "is-system-running", "--wait"]);
    return /Failed to connect to bus/.test(r.out) ? null : r.out.trim();
  });
  expect(state, inside(["systemctl", "--failed", "--no-legend"]).out).toBe("running");
}, 180_000);

afterAll(
  () =>
    tearDown(
      ...engines.map((e) => () => e.close()),
      async () => {
        if (!nspawn?.pid || nspawn.exitCode !== null) return;
        // SIGTERM: nspawn asks the container's systemd to power off.
        const exited = new Promise((r) => nspawn!.once("exit", r));
        nspawn.kill("SIGTERM");
        const timer = setTimeout(() => nspawn!.kill("SIGKILL"), 30_000);
        await exited;
        clearTimeout(timer);
      },
      () => {
        if (!rootView) return;
        execFileSync("umount", [rootView]);
        rmSync(rootView, { recursive: true, force: true });
      },
      () => topo?.remove(),
      () => db?.close(),
      () => trellis?.stop(),
      () => data.remove(),
    ),
  90_000,
);

describe.skipIf(!canBoot)("the gateway as a systemd service on a Debian server", () => {
  it("install.sh installs and starts the unit; `trellis up` as printed joins in TUN mode under its hardening; a restart keeps the node; stop removes its device", async () => {
    // A checkout in a temporary directory is refused: the service could not see it.
    const refused = inside(["sh", join(TMP_CHECKOUT, "gateway/packaging/install.sh"), "--no-build"]);
    expect(refused.code, refused.out).not.toBe(0);
    expect(refused.out).toMatch(/temporary directory, which the service cannot see/);
    expect(inside(["test", "-e", "/etc/systemd/system/trellis.service"]).code).not.toBe(0);

    const install = inside(["sh", join(CHECKOUT, "gateway/packaging/install.sh"), "--no-build"]);
    expect(install.code, install.out).toBe(0);
    expect(install.out).toMatch(/started trellis\.service/);
    expect(inside(["systemctl", "is-active", "trellis"]).out.trim()).toBe("active");
    expect(inside(["systemctl", "is-enabled", "trellis"]).out.trim()).toBe("enabled");

    // The admin's key, in the file the printed command names.
    const key = (await createPreAuthKey(db, { tags: ["tag:server"], reusable: false }, "local")).key;
    expect(inside(["sh", "-c", "umask 077 && cat > /root/trellis.key"], `${key}\n`).code).toBe(0);
    const up = inside([
      "trellis",
      "up",
      "--login-server",
      url,
      "--auth-key",
      "file:/root/trellis.key",
      "--hostname",
      "sd-server",
    ]);
    expect(up.code, up.out).toBe(0);
    expect(up.out).toMatch(/this machine is sd-server/);
    expect(up.out).toMatch(/mode: +TUN device trellis0/);
    // The daemon is the unit's process (the CLI found it through the socket, and started none).
    const mainPid = inside(["systemctl", "show", "-p", "MainPID", "--value", "trellis"]).out.trim();
    expect(inside(["cat", "/var/lib/trellis/trellisd.pid"]).out.trim()).toBe(mainPid);
    expect(execFileSync("ip", ["-n", topo.name, "-o", "link", "show"], { encoding: "utf8" })).toContain(
      "trellis0",
    );

    // It carries traffic: a peer's ping is answered by the container's kernel through the TUN device.
    const peerKey = (await createPreAuthKey(db, { tags: ["tag:server"], reusable: false }, "local")).key;
    const peer = nodeEngine({
      baseUrl: url,
      privateKey: generateKeyPair().privateKey,
      register: { preAuthKey: peerKey, hostname: "sd-peer", os: "linux" },
      webrtc: false,
    });
    engines.push(peer);
    await peer.start();
    const pong = await until("a ping reply from sd-server", () =>
      peer.ping("sd-server", { timeoutMs: 3000 }).catch(() => null),
    );
    expect(pong.peer).toBe("sd-server");

    // systemctl restart: the node comes back by itself, the same machine.
    const before = JSON.parse(inside(["trellis", "status", "--json"]).out) as {
      self: { addresses: string[] };
    };
    expect(inside(["systemctl", "restart", "trellis"]).code).toBe(0);
    const after = await until("the node running again after the restart", () => {
      const r = inside(["trellis", "status", "--json"]);
      if (r.code !== 0) return null;
      const s = JSON.parse(r.out) as { state: string; self: { name: string; addresses: string[] } | null };
      return s.state === "running" ? s : null;
    });
    expect(after.self).toMatchObject({ name: "sd-server", addresses: before.self.addresses });
    await until("a ping reply after the restart", () =>
      peer.ping("sd-server", { timeoutMs: 3000 }).catch(() => null),
    );

    // systemctl stop: the device goes with the daemon.
    expect(inside(["systemctl", "stop", "trellis"]).code).toBe(0);
    expect(execFileSync("ip", ["-n", topo.name, "-o", "link", "show"], { encoding: "utf8" })).not.toContain(
      "trellis0",
    );
  });
});
