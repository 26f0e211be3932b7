// SSH from the app layer against a real OpenSSH server (Debian's sshd on
// loopback, its own config and host keys for this run): the host key is
// shown as OpenSSH fingerprints it, the caller's refusal stops the session
// before signing in, a key made here or by ssh-keygen signs in, a shell
// runs on a terminal whose size follows resizes, and a refused key is
// reported as such. Runs as root (sshd needs it); skipped elsewhere.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Duplex as NodeDuplex } from "node:stream";
import { IDBFactory } from "fake-indexeddb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeyStore } from "../browser/keystore";
import type { Duplex } from "./duplex";
import { SshError, SshShell, type HostKey, type SshAuth } from "./ssh";
import { generateSshKey, importPrivateKey, KnownHosts, SshKeyError, SshKeyring } from "./ssh-keys";

const SSHD = "/usr/sbin/sshd";
const canRun = process.getuid?.() === 0 && existsSync(SSHD) && existsSync("/usr/bin/ssh-keygen");
if (!canRun) console.warn("skipping the SSH tests: they need root and Debian's openssh-server");

let dir: string;
let sshd: ChildProcess | undefined;
let port: number;
let authorized: string;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
    s.on("error", reject);
  });
}

async function dial(): Promise<Duplex> {
  const socket = connect(port, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return NodeDuplex.toWeb(socket) as unknown as Duplex;
}

beforeAll(async () => {
  if (!canRun) return;
  dir = mkdtempSync(join(tmpdir(), "trellis-sshd-"));
  for (const t of ["ecdsa", "rsa"])
    execFileSync("ssh-keygen", ["-q", "-t", t, "-N", "", "-f", join(dir, `host_${t}`)]);
  authorized = join(dir, "authorized_keys");
  writeFileSync(authorized, "");
  port = await freePort();
  writeFileSync(
    join(dir, "sshd_config"),
    [
      `ListenAddress 127.0.0.1:${port}`,
      `HostKey ${join(dir, "host_ecdsa")}`,
      `HostKey ${join(dir, "host_rsa")}`,
      `AuthorizedKeysFile ${authorized}`,
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "StrictModes no",
      "PidFile none",
      "LogLevel ERROR",
    ].join("\n") + "\n",
  );
  execFileSync("mkdir", ["-p", "/run/sshd"]);
  sshd = spawn(SSHD, ["-D", "-e", "-f", join(dir, "sshd_config")], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  sshd.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  // Bounded: sshd listens within a second on an idle machine.
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1");
      s.once("connect", () => (s.destroy(), resolve(true)));
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    if (sshd.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`sshd did not start: ${stderr}`);
}, 30_000);

afterAll(() => {
  sshd?.kill("SIGKILL");
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function keyStore(): KeyStore {
  return new KeyStore({
    indexedDB: new IDBFactory(),
    subtle: globalThis.crypto.subtle,
    random: (n) => globalThis.crypto.getRandomValues(new Uint8Array(n)),
  });
}

/** `ssh-keygen -lf` of a host public key: `SHA256:…`. */
function fingerprintOf(pubFile: string): string {
  return execFileSync("ssh-keygen", ["-lf", pubFile], { encoding: "utf8" }).split(" ")[1]!;
}

/** Output of the shell until `pattern` shows, bounded. */
function waitFor(shell: SshShell, pattern: RegExp, timeoutMs = 10_000): Promise<string> {
  let out = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => (off(), reject(new Error(`no ${pattern} in: ${out}`))), timeoutMs);
    const off = shell.onData((d) => {
      out += new TextDecoder().decode(d);
      if (pattern.test(out)) {
        clearTimeout(timer);
        off();
        resolve(out);
      }
    });
  });
}

async function open(auth: SshAuth, verify: (k: HostKey) => Promise<boolean> = async () => true) {
  return SshShell.open({
    duplex: await dial(),
    username: "root",
    auth,
    verifyHostKey: verify,
    cols: 80,
    rows: 24,
  });
}

describe.skipIf(!canRun)("SSH to OpenSSH", () => {
  it("signs in with a key made here, runs a shell that follows resizes, and reports its exit", async () => {
    const store = keyStore();
    const ring = new SshKeyring(store, "alice");
    const info = await ring.add(await generateSshKey("ecdsa-p256"), "alice@browser");
    expect(info.publicKey).toMatch(/^ecdsa-sha2-nistp256 AAAA\S+ alice@browser$/);
    writeFileSync(authorized, info.publicKey + "\n");

    let seen: HostKey | undefined;
    const shell = await open({ keyPair: await ring.load(info.id) }, async (k) => ((seen = k), true));
    // The fingerprint is the one OpenSSH prints for one of the server's host keys.
    const prints = ["ecdsa", "rsa"].map((t) => fingerprintOf(join(dir, `host_${t}.pub`)));
    expect(prints).toContain(seen!.fingerprint);

    const answer = waitFor(shell, /answer-42/);
    await shell.write("echo answer-$((6*7))\n");
    await answer;
    await shell.resize(132, 43);
    const size = waitFor(shell, /43 132/);
    await shell.write("stty size\n");
    await size;
    const exited = new Promise((resolve) => shell.onExit(resolve));
    await shell.write("exit 3\n");
    expect(await exited).toMatchObject({ status: 3 });
  });

  it("stops before signing in when the host key is not accepted, and pins keys per user and machine", async () => {
    const known = new KnownHosts(keyStore(), "alice");
    const verify = async (k: HostKey) => (await known.check("office", k)).state !== "changed";
    const key = await generateSshKey("ecdsa-p256");
    const first = await open({ keyPair: key }, async (k) => {
      expect((await known.check("office", k)).state).toBe("unknown");
      await known.trust("office", k);
      return true;
    }).catch((e: unknown) => e);
    // This key is not authorized, but the host key was seen and pinned first.
    expect(first).toBeInstanceOf(SshError);
    expect((first as SshError).code).toBe("auth_failed");

    // A different pinned key for the machine: refused before authentication.
    const pinned = (await known.check("office", { algorithm: "x", fingerprint: "x", key: "x" })) as {
      state: string;
    };
    expect(pinned.state).toBe("changed");
    await known.trust("office", { algorithm: "ecdsa-sha2-nistp256", fingerprint: "SHA256:old", key: "b2xk" });
    const refused = await open({ keyPair: key }, verify).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(SshError);
    expect((refused as SshError).code).toBe("host_key_rejected");
  });

  it("signs in with keys ssh-keygen made (PEM and PKCS#8) and refuses a key it does not know", async () => {
    for (const [type, format] of [
      ["ecdsa", "PEM"],
      ["rsa", "PKCS8"],
    ] as const) {
      const file = join(dir, `user_${type}`);
      execFileSync("ssh-keygen", ["-q", "-t", type, "-m", format, "-N", "", "-f", file]);
      writeFileSync(authorized, readFileSync(`${file}.pub`));
      const shell = await open({ keyPair: await importPrivateKey(readFileSync(file, "utf8")) });
      const done = waitFor(shell, /imported-ok/);
      await shell.write("echo imported-ok\n");
      await done;
      await shell.close();
      expect(shell.exited).not.toBeNull();
    }
    const stranger = await open({ keyPair: await generateSshKey("ecdsa-p256") }).catch((e: unknown) => e);
    expect((stranger as SshError).code).toBe("auth_failed");
    await expect(importPrivateKey("ssh-ed25519 AAAA… not a private key")).rejects.toBeInstanceOf(SshKeyError);
    const encrypted = join(dir, "enc");
    execFileSync("ssh-keygen", ["-q", "-t", "ecdsa", "-m", "PKCS8", "-N", "s3cret-pass", "-f", encrypted]);
    await expect(importPrivateKey(readFileSync(encrypted, "utf8"))).rejects.toMatchObject({
      code: "encrypted",
    });
    const withPass = await importPrivateKey(readFileSync(encrypted, "utf8"), "s3cret-pass");
    expect(withPass.hasPrivateKey).toBe(true);
  });
});
