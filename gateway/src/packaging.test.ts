// gateway/packaging/install.sh, staged under a temporary prefix: no systemd,
// no build, no change to this machine (the group goes into the prefix's own
// /etc/group). What it writes, that a second run changes nothing, and that
// --uninstall takes away what it added and nothing else.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { hasCommand } from "./testing/netns";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const SCRIPT = join(ROOT, "gateway/packaging/install.sh");
const UNIT = join(ROOT, "gateway/packaging/trellis.service");
// groupadd --prefix needs root; without it the script says it skipped the group.
const root = process.getuid?.() === 0 && hasCommand("groupadd");

function install(prefix: string, ...args: string[]) {
  const r = spawnSync(SCRIPT, ["--prefix", prefix, "--no-start", "--no-build", ...args], {
    encoding: "utf8",
    timeout: 60_000,
    cwd: "/",
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Every file under `dir`: mode, mtime and content, to compare runs. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else
        out[relative(dir, p)] = `${(st.mode & 0o7777).toString(8)} ${st.mtimeMs} ${readFileSync(p, "utf8")}`;
    }
  };
  walk(dir);
  return out;
}

describe("gateway/packaging/install.sh", () => {
  const prefix = mkdtempSync(join(tmpdir(), "trellis-install-"));
  afterAll(() => rmSync(prefix, { recursive: true, force: true }));
  if (root) {
    mkdirSync(join(prefix, "etc"));
    writeFileSync(join(prefix, "etc/group"), "root:x:0:\n");
    writeFileSync(join(prefix, "etc/gshadow"), "root:*::\n");
  }

  it("stages the wrapper, the unit, the defaults file and the group, and says what comes next", () => {
    const r = install(prefix);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const wrapper = join(prefix, "usr/local/bin/trellis");
    const unit = join(prefix, "etc/systemd/system/trellis.service");
    const defaults = join(prefix, "etc/default/trellis");
    for (const f of [wrapper, unit, defaults]) expect(r.out).toContain(`installed ${f}`);
    expect(statSync(wrapper).mode & 0o777).toBe(0o755);
    expect(statSync(unit).mode & 0o777).toBe(0o644);
    expect(readFileSync(wrapper, "utf8")).toContain(`exec "${join(ROOT, "gateway/bin/trellis")}" "$@"`);
    // The unit is the packaged one, marked as this script's.
    expect(readFileSync(unit, "utf8")).toBe(
      `# installed by gateway/packaging/install.sh from ${ROOT.replace(/\/$/, "")}.\n${readFileSync(UNIT, "utf8")}`,
    );
    expect(readFileSync(defaults, "utf8")).toContain('TRELLIS_DAEMON_FLAGS=""');
    if (root) expect(readFileSync(join(prefix, "etc/group"), "utf8")).toMatch(/^trellis:x:\d+:$/m);
    else expect(r.out).toContain("skipped the group trellis");
    expect(r.out).toContain("staged under");
    expect(r.out).toContain("trellis up --login-server https://vpn.example.com --auth-key file:");

    // The wrapper runs this checkout's CLI from any directory (a unit runs in /).
    expect(execFileSync(wrapper, ["version"], { cwd: "/", encoding: "utf8", timeout: 30_000 })).toBe(
      "trellis 0.1.0\n",
    );
  });

  it("changes nothing the second time", () => {
    const before = snapshot(prefix);
    const r = install(prefix);
    expect(r.code).toBe(0);
    expect(r.out).not.toMatch(/installed|created/);
    expect(r.out).toMatch(/unchanged .*usr\/local\/bin\/trellis/);
    expect(snapshot(prefix)).toEqual(before);
  });

  it("--uninstall removes what it added and keeps the defaults the admin changed", () => {
    const defaults = join(prefix, "etc/default/trellis");
    writeFileSync(defaults, 'TRELLIS_DAEMON_FLAGS="--metrics 127.0.0.1:9101"\n');
    const r = install(prefix, "--uninstall");
    expect(r.code).toBe(0);
    expect(r.out).toContain(`kept ${defaults}: it was changed since it was installed`);
    expect(Object.keys(snapshot(prefix)).filter((f) => !f.startsWith("etc/g"))).toEqual([
      "etc/default/trellis",
    ]);
    if (root) expect(readFileSync(join(prefix, "etc/group"), "utf8")).toBe("root:x:0:\n");
  });

  it("refuses unknown options", () => {
    const r = install(prefix, "--frobnicate");
    expect(r.code).toBe(1);
    expect(r.err).toContain("unknown option --frobnicate");
  });

  it.skipIf(!hasCommand("shellcheck"))("passes shellcheck", () => {
    execFileSync("shellcheck", ["-s", "sh", SCRIPT], { timeout: 60_000 });
  });
});

describe("gateway/packaging/trellis.service", () => {
  const unit = readFileSync(UNIT, "utf8");
  const directive = (name: string) =>
    unit
      .split("\n")
      .filter((l) => l.startsWith(`${name}=`))
      .map((l) => l.slice(name.length + 1));

  it("runs the daemon on the state directory, its socket for the group trellis, restarting on failure", () => {
    expect(directive("ExecStart")).toEqual([
      "/usr/local/bin/trellis daemon --state-dir /var/lib/trellis --socket-group trellis $TRELLIS_DAEMON_FLAGS",
    ]);
    expect(directive("Restart")).toEqual(["on-failure"]);
    expect(directive("StateDirectory")).toEqual(["trellis"]);
    expect(directive("Group")).toEqual(["trellis"]);
  });

  it("keeps what TUN mode and nftables need, and no more capabilities", () => {
    expect(directive("CapabilityBoundingSet")).toEqual(["CAP_NET_ADMIN CAP_NET_RAW"]);
    expect(directive("DeviceAllow")).toEqual(["/dev/net/tun rw"]);
    expect(directive("RestrictAddressFamilies")[0]).toContain("AF_NETLINK");
    // /proc/sys must stay writable for IP forwarding; V8 needs W+X memory.
    expect(directive("ProtectKernelTunables")).toEqual([]);
    expect(directive("MemoryDenyWriteExecute")).toEqual([]);
  });
});
