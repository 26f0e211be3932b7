import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@trellis/log";
import { request } from "./client";
import { Daemon } from "./daemon";

// The daemon's socket and protocol, without a control server: what any local
// client may send, and what it gets back.

const dir = mkdtempSync(join(tmpdir(), "trellisd-"));
let daemon: Daemon;

beforeAll(async () => {
  daemon = await Daemon.start({ stateDir: dir, log: createLogger("trellisd-test", "silent") });
});
afterAll(async () => {
  await daemon?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Send raw bytes, read the answer line. */
function raw(text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(daemon.socketPath);
    let buf = "";
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => (buf += d));
    sock.on("end", () => resolve(buf));
    sock.on("error", reject);
    sock.write(text);
  });
}

describe("trellis daemon socket", () => {
  it("is a socket only its owner may use", () => {
    const st = statSync(daemon.socketPath);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
  });

  it("answers status while down", async () => {
    const res = await request(dir, { op: "status" }, 5000);
    expect(res).toMatchObject({ ok: true, status: { state: "stopped", loginServer: null, peers: [] } });
  });

  it("refuses what is not a valid request, saying why", async () => {
    expect(JSON.parse(await raw("not json\n"))).toMatchObject({ ok: false, error: { code: "bad_request" } });
    const bad = JSON.parse(
      await raw(`${JSON.stringify({ op: "up", prefs: { loginServer: "ftp://x", hostname: "a" } })}\n`),
    );
    expect(bad).toMatchObject({ ok: false, error: { code: "bad_request" } });
    expect(bad.error.message).toMatch(/http\(s\) URL/);
    expect(JSON.parse(await raw(`${JSON.stringify({ op: "reboot" })}\n`))).toMatchObject({ ok: false });
  });

  it("refuses a request line longer than its bound without waiting for the end", async () => {
    const answer = JSON.parse(await raw("x".repeat(64 * 1024)));
    expect(answer).toMatchObject({ ok: false, error: { code: "too_large" } });
  });

  it("says the node is not up to ping and not logged in to logout", async () => {
    expect(await request(dir, { op: "ping", peer: "x" }, 5000)).toMatchObject({
      ok: false,
      error: { code: "not_running" },
    });
    expect(await request(dir, { op: "logout" }, 5000)).toMatchObject({
      ok: false,
      error: { code: "not_logged_in" },
    });
  });

  it("refuses set when the node is not logged in, or down, and set requests that are not valid", async () => {
    expect(await request(dir, { op: "set", prefs: { acceptRoutes: true } }, 5000)).toMatchObject({
      ok: false,
      error: { code: "not_logged_in", message: "this node is not logged in (run trellis up first)" },
    });
    const prefs = { loginServer: "http://127.0.0.1:9", hostname: "gw" };
    writeFileSync(join(dir, "prefs.json"), JSON.stringify({ version: 1, prefs, wantRunning: false }));
    try {
      const down = await request(dir, { op: "set", prefs: { hostname: "other" } }, 5000);
      expect(down).toMatchObject({ ok: false, error: { code: "not_running" } });
      expect(!down.ok && down.error.message).toMatch(/the node is down: trellis up brings it up/);
      // A prefs file of an older daemon (no acceptRoutes, advertiseExitNode) still reads, with defaults.
      expect(await request(dir, { op: "status" }, 5000)).toMatchObject({
        ok: true,
        status: { prefs: { ...prefs, acceptRoutes: false, advertiseExitNode: false, advertiseRoutes: [] } },
      });
    } finally {
      rmSync(join(dir, "prefs.json"));
    }
    const bad = JSON.parse(
      await raw(
        `${JSON.stringify({ op: "set", prefs: { advertiseRoutes: ["nope"], loginServer: "http://x" } })}\n`,
      ),
    );
    expect(bad).toMatchObject({ ok: false, error: { code: "bad_request" } });
    expect(bad.error.message).toMatch(/prefs\.advertiseRoutes\.0: must be a CIDR prefix/);
    expect(bad.error.message).toMatch(/loginServer/);
  });

  it("refuses to start a second daemon on the same state directory", async () => {
    await expect(
      Daemon.start({ stateDir: dir, log: createLogger("trellisd-test", "silent") }),
    ).rejects.toThrow(/already listens/);
  });
});

/** The gid of a group other than ours, to hand the socket to (only root may). */
function otherGroup(): { name: string; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  try {
    const [name, , gid] = execFileSync("getent", ["group", "nogroup"], { encoding: "utf8" }).split(":");
    return { name: name!, gid: Number(gid) };
  } catch {
    return null;
  }
}
const group = otherGroup();

describe("trellis daemon --socket-group", () => {
  const start = async (socketGroup: string) => {
    const d = mkdtempSync(join(tmpdir(), "trellisd-group-"));
    const daemon = await Daemon.start({
      stateDir: d,
      log: createLogger("trellisd-test", "silent"),
      socketGroup,
    });
    return { d, daemon };
  };

  it.skipIf(!group)("lets the group use the socket (0660) and reach it (state directory 0710)", async () => {
    const { d, daemon } = await start(group!.name);
    try {
      const sock = statSync(daemon.socketPath);
      expect(sock.mode & 0o777).toBe(0o660);
      expect(sock.gid).toBe(group!.gid);
      const dir = statSync(d);
      expect(dir.mode & 0o777).toBe(0o710);
      expect(dir.gid).toBe(group!.gid);
      expect(await request(d, { op: "status" }, 5000)).toMatchObject({ ok: true });
    } finally {
      await daemon.stop();
      rmSync(d, { recursive: true, force: true });
    }
  });

  it("keeps the socket 0600 when there is no such group", async () => {
    const { d, daemon } = await start("trellis-no-such-group");
    try {
      expect(statSync(daemon.socketPath).mode & 0o777).toBe(0o600);
      expect(statSync(d).mode & 0o777).toBe(0o700);
    } finally {
      await daemon.stop();
      rmSync(d, { recursive: true, force: true });
    }
  });
});
