import { execFile, spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import type { Readable } from "node:stream";

// A real VNC server for tests: TigerVNC's Xvnc (Debian package
// `tigervnc-standalone-server`), which is its own X server, so no Xvfb and no
// x11vnc are needed; `xsetroot` (package `x11-xserver-utils`) paints its root
// window so the screen is not blank. Security type None: the server listens
// only on loopback or inside a namespace the test created.

export const XVNC = "/usr/bin/Xvnc";
export const XSETROOT = "/usr/bin/xsetroot";
export const hasXvnc = existsSync(XVNC) && existsSync(XSETROOT);

export class XvncError extends Error {
  override name = "XvncError";
}

export interface XvncOptions {
  /** TCP port for RFB. */
  port: number;
  /** Address to listen on ("127.0.0.1", or an address inside a namespace). */
  iface: string;
  width?: number;
  height?: number;
  /** The desktop name the server sends in ServerInit. */
  desktop?: string;
  /** The root window's colour, `#rrggbb`. */
  color?: string;
  /** A command prefix to run the server and xsetroot under, e.g. `["ip", "netns", "exec", ns]` (it must exec, not fork). */
  wrap?: string[];
  timeoutMs?: number;
}

export interface RunningXvnc {
  pid: number;
  /** The X display number Xvnc chose for itself (-displayfd). */
  display: number;
  port: number;
  width: number;
  height: number;
  desktop: string;
  color: string;
  /** What the server printed on stderr lately (its log). */
  log(): string;
  /** SIGTERM, SIGKILL after 3 s; removes the display's lock and socket if Xvnc could not. Idempotent. */
  stop(): Promise<void>;
}

export async function startXvnc(opts: XvncOptions): Promise<RunningXvnc> {
  if (!hasXvnc)
    throw new XvncError(`${XVNC} or ${XSETROOT} is missing (tigervnc-standalone-server, x11-xserver-utils)`);
  const width = opts.width ?? 1024;
  const height = opts.height ?? 768;
  const desktop = opts.desktop ?? "trellis-office";
  const color = opts.color ?? "#2a7ab0";
  const wrap = opts.wrap ?? [];
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const argv = [
    ...wrap,
    XVNC,
    // Xvnc picks a free display itself and writes its number to fd 3 once it
    // accepts clients: no guessing among the displays other tests hold.
    "-displayfd",
    "3",
    "-rfbport",
    String(opts.port),
    "-interface",
    opts.iface,
    "-SecurityTypes",
    "None",
    "-geometry",
    `${width}x${height}`,
    "-depth",
    "24",
    "-desktop",
    desktop,
    "-nolisten",
    "tcp",
  ];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "ignore", "pipe", "pipe"] });
  let log = "";
  child.stderr!.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-8192)));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  let display = -1;

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
        await exited;
        clearTimeout(timer);
      }
      // A killed Xvnc leaves its lock and socket behind, and the next server
      // would skip that display forever: remove them, if they are this server's.
      if (display >= 0) {
        const lock = `/tmp/.X${display}-lock`;
        try {
          if (Number(readFileSync(lock, "utf8").trim()) === child.pid) {
            rmSync(lock, { force: true });
            rmSync(`/tmp/.X11-unix/X${display}`, { force: true });
          }
        } catch {
          // no lock left: Xvnc removed it on SIGTERM
        }
      }
    })());

  try {
    display = await new Promise<number>((resolve, reject) => {
      const fd3 = child.stdio[3] as Readable;
      let got = "";
      const timer = setTimeout(
        () => reject(new XvncError(`Xvnc did not start within ${timeoutMs} ms:\n${log}`)),
        timeoutMs,
      );
      fd3.on("data", (d: Buffer) => {
        got += d.toString();
        const m = /^(\d+)\n/.exec(got);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new XvncError(`Xvnc exited (${code ?? signal}) before it was ready:\n${log}`));
      });
      child.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    await new Promise<void>((resolve, reject) => {
      const [cmd, ...args] = [...wrap, XSETROOT, "-display", `:${display}`, "-solid", color];
      execFile(cmd!, args, { timeout: timeoutMs }, (err, _out, stderr) =>
        err ? reject(new XvncError(`xsetroot failed: ${err.message} ${stderr}`)) : resolve(),
      );
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { pid: child.pid!, display, port: opts.port, width, height, desktop, color, log: () => log, stop };
}
