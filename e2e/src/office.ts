// An office LAN for the browser-app journeys: a network namespace linked to
// the host by a veth pair, running real services — Debian's OpenSSH (its
// own config, fresh ECDSA and RSA host keys, a throw-away user with a
// password and an authorized_keys file), TigerVNC's Xvnc (its own X
// server and framebuffer, no password, a solid-colour root window) and a
// small web app on port 80 (Node's HTTP server: a page with a stylesheet,
// an image and a script that fetches JSON and talks over a WebSocket, a
// form answered 303, a cookie, a large download). The
// tailnet reaches it through a node that forwards its TCP ports here (the
// gateway journeys use the real gateway instead). Removed on close: the
// namespace, the user, the processes and the files.
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import {
  appendFileSync,
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NodeEngine } from "@trellis/client";
import { forwardToSocket } from "@trellis/client/node";
import { hasXvnc, startXvnc } from "@trellis/client/testing";
import { topologyIds } from "./netns";
import { ROOT } from "./server";
import { until } from "./wait";

export const canRunOffice = process.getuid?.() === 0 && existsSync("/usr/sbin/sshd") && hasXvnc;

export interface Office {
  ns: string;
  ip: string;
  sshUser: string;
  sshPassword: string;
  /** The VNC server's desktop size. */
  vnc: { port: number; width: number; height: number };
  /** Let `line` (an OpenSSH public key line) sign in as the SSH user. */
  authorizeKey(line: string): void;
  /** New host keys and a restarted sshd (what a reinstalled or impersonated server looks like). */
  rotateHostKeys(): Promise<void>;
  /** `SHA256:…` of the current host keys, as ssh-keygen prints them. */
  hostKeyFingerprints(): string[];
  /** A TCP connection from the host to a service of the office. */
  dial(port: number): Promise<Socket>;
  close(): Promise<void>;
}

/** The office's web app (an internal tool someone wrote): plain node:http. */
const WEB_APP = `
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { gzipSync } from "node:zlib";
const { WebSocketServer } = createRequire(process.argv[3])("ws");
const PNG = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==", "base64");
const page = (title, body) =>
  '<!doctype html><html><head><meta charset="utf-8"><title>' + title + '</title><link rel="stylesheet" href="/static/app.css"></head><body>' + body + "</body></html>";
const server = createServer((req, res) => {
  const url = new URL(req.url, "http://office");
  const html = (status, body) => res.writeHead(status, { "content-type": "text/html; charset=utf-8" }).end(body);
  if (url.pathname === "/") {
    return html(200, page("Office wiki",
      '<h1>Office wiki</h1><img id="logo" src="/static/logo.png" width="16" height="16" alt="logo"><p id="data">loading</p><p id="ws">no echo</p>' +
      '<form method="post" action="/submit"><input name="name" id="name"><button id="send">Send</button></form><a id="who" href="/whoami">who am I</a>' +
      '<script src="/static/app.js"></script>'));
  }
  if (url.pathname === "/static/app.css") {
    // Compressed when the client allows it, as most web servers do.
    const css = "h1 { color: rgb(10, 120, 60); }";
    if (!/gzip/.test(req.headers["accept-encoding"] ?? "")) return res.writeHead(200, { "content-type": "text/css" }).end(css);
    return res.writeHead(200, { "content-type": "text/css", "content-encoding": "gzip" }).end(gzipSync(css));
  }
  if (url.pathname === "/static/logo.png") return res.writeHead(200, { "content-type": "image/png" }).end(PNG);
  if (url.pathname === "/static/app.js") {
    return res.writeHead(200, { "content-type": "text/javascript" }).end(
      'fetch("/api/data.json").then((r) => r.json()).then((d) => { document.getElementById("data").textContent = "answer " + d.answer; });' +
      'const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");' +
      'ws.onopen = () => ws.send("ping over the tailnet");' +
      'ws.onmessage = (e) => { document.getElementById("ws").textContent = "echo: " + e.data; };');
  }
  if (url.pathname === "/api/data.json") {
    res.setHeader("content-type", "application/json");
    return res.end(JSON.stringify({ answer: 42, from: "office" }));
  }
  if (url.pathname === "/submit" && req.method === "POST") {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      const name = new URLSearchParams(body).get("name") ?? "";
      res.writeHead(303, { location: "/thanks?name=" + encodeURIComponent(name), "set-cookie": "app_session=s1; Path=/; HttpOnly" });
      res.end();
    });
    return;
  }
  if (url.pathname === "/thanks") return html(200, page("Thanks", '<p id="thanks">Thanks, ' + (url.searchParams.get("name") ?? "").replace(/[<&>"]/g, "") + "</p>"));
  if (url.pathname === "/whoami") return html(200, page("Who", '<p id="cookie">cookie: ' + (req.headers.cookie ?? "none").replace(/[<&>"]/g, "") + "</p>"));
  if (url.pathname === "/big") {
    const total = Math.min(Number(url.searchParams.get("mb") ?? "1"), 200) * 1024 * 1024;
    res.setHeader("content-length", String(total));
    const chunk = Buffer.alloc(64 * 1024, 120);
    let sent = 0;
    const more = () => {
      while (sent < total) {
        const n = Math.min(chunk.length, total - sent);
        sent += n;
        if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return res.once("drain", more);
      }
      res.end();
    };
    return more();
  }
  res.writeHead(404, { "content-type": "text/plain" }).end("not found");
});
new WebSocketServer({ server, path: "/ws" }).on("connection", (ws) => ws.on("message", (m, binary) => ws.send(m, { binary })));
server.listen(80, process.argv[2]);
`;

function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, {
    encoding: "utf8",
    input,
    stdio: ["pipe", "pipe", "pipe"],
    timeout: 15_000,
  });
}

/**
 * Start the office: in a namespace of its own linked to the host, or with
 * `within`, in an existing namespace at an address it already has (the user
 * journeys' office LAN, which only the gateway reaches); that namespace is
 * the caller's and stays.
 */
export async function startOffice(within?: { ns: string; ip: string }): Promise<Office> {
  const { id, n } = topologyIds();
  const ns = within?.ns ?? `trl-off-${id}`;
  const hv = `tro${id}`;
  const hostIp = `10.77.${n}.1`;
  const ip = within?.ip ?? `10.77.${n}.2`;
  const dir = mkdtempSync(join(tmpdir(), "trellis-office-"));
  chmodSync(dir, 0o755);
  const sshUser = `trl${id}`.slice(0, 31);
  const sshPassword = `pw-${Math.random().toString(36).slice(2)}-Office`;
  const home = join(dir, "home");
  const procs: ChildProcess[] = [];
  let sshd: ChildProcess | null = null;
  let userAdded = false;
  const stops: (() => Promise<void>)[] = [];

  const close = async () => {
    await Promise.all(stops.splice(0).map((stop) => stop().catch(() => undefined)));
    for (const p of procs) p.kill("SIGKILL");
    sshd?.kill("SIGKILL");
    if (userAdded) {
      try {
        run("userdel", ["-f", sshUser]);
      } catch {
        // already gone
      }
      userAdded = false;
    }
    for (const args of within
      ? []
      : [
          ["netns", "del", ns],
          ["link", "del", hv],
        ]) {
      try {
        run("ip", args);
      } catch {
        // already gone (deleting the namespace removes its veth end too)
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const inNs = (cmd: string, args: string[]) =>
    spawn("ip", ["netns", "exec", ns, cmd, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  // Asked inside the namespace: the host may have no route to the office.
  const listening = (port: number) =>
    new Promise<boolean>((resolve) => {
      execFile(
        "ip",
        ["netns", "exec", ns, "bash", "-c", `exec 3<>/dev/tcp/${ip}/${port}`],
        { timeout: 5000 },
        (err) => resolve(!err),
      );
    });
  const keygen = () => {
    for (const t of ["ecdsa", "rsa"]) {
      rmSync(join(dir, `host_${t}`), { force: true });
      rmSync(join(dir, `host_${t}.pub`), { force: true });
      run("ssh-keygen", ["-q", "-t", t, "-N", "", "-f", join(dir, `host_${t}`)]);
    }
  };
  const startSshd = async () => {
    sshd?.kill("SIGKILL");
    // The old sshd's socket closes asynchronously: wait until the port is free.
    await until("the old sshd gone", async () => !(await listening(22)), 10_000);
    sshd = inNs("/usr/sbin/sshd", ["-D", "-e", "-f", join(dir, "sshd_config")]);
    let err = "";
    sshd.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    await until(`sshd listening (${err})`, () => listening(22), 10_000);
  };

  try {
    if (!within) {
      run("ip", ["netns", "add", ns]);
      run("ip", ["link", "add", hv, "type", "veth", "peer", "name", `trp${id}`, "netns", ns]);
      run("ip", ["addr", "add", `${hostIp}/30`, "dev", hv]);
      run("ip", ["link", "set", hv, "up"]);
      run("ip", ["-n", ns, "addr", "add", `${ip}/30`, "dev", `trp${id}`]);
      for (const l of ["lo", `trp${id}`]) run("ip", ["-n", ns, "link", "set", l, "up"]);
    }

    // The SSH user: a password and an authorized_keys file of its own.
    mkdirSync(join(home, ".ssh"), { recursive: true });
    run("useradd", ["-M", "-d", home, "-s", "/bin/sh", sshUser]);
    userAdded = true;
    run("chpasswd", [], `${sshUser}:${sshPassword}\n`);
    writeFileSync(join(home, ".ssh", "authorized_keys"), "");
    const uid = Number(run("id", ["-u", sshUser]).trim());
    const gid = Number(run("id", ["-g", sshUser]).trim());
    for (const p of [home, join(home, ".ssh"), join(home, ".ssh", "authorized_keys")]) chownSync(p, uid, gid);
    chmodSync(join(home, ".ssh"), 0o700);

    keygen();
    writeFileSync(
      join(dir, "sshd_config"),
      [
        `ListenAddress ${ip}:22`,
        `HostKey ${join(dir, "host_ecdsa")}`,
        `HostKey ${join(dir, "host_rsa")}`,
        `AllowUsers ${sshUser}`,
        "PasswordAuthentication yes",
        "KbdInteractiveAuthentication no",
        // Without PAM sshd checks the password against /etc/shadow itself.
        "UsePAM no",
        "PidFile none",
        "LogLevel ERROR",
      ].join("\n") + "\n",
    );
    mkdirSync("/run/sshd", { recursive: true });
    await startSshd();

    // VNC: TigerVNC's Xvnc (its own X server) with a painted root window, inside the namespace.
    const xvnc = await startXvnc({
      port: 5900,
      iface: ip,
      width: 800,
      height: 600,
      desktop: "office",
      color: "#2a7ab0",
      wrap: ["ip", "netns", "exec", ns],
    });
    stops.push(() => xvnc.stop());
    const vnc = { port: xvnc.port, width: xvnc.width, height: xvnc.height };

    // The web app, run by this Node binary inside the namespace.
    writeFileSync(join(dir, "web-app.mjs"), WEB_APP);
    procs.push(inNs(process.execPath, [join(dir, "web-app.mjs"), ip, join(ROOT, "package.json")]));
    await until("the web app listening", () => listening(80), 10_000);

    return {
      ns,
      ip,
      sshUser,
      sshPassword,
      vnc,
      authorizeKey(line) {
        appendFileSync(join(home, ".ssh", "authorized_keys"), line.trim() + "\n");
      },
      async rotateHostKeys() {
        keygen();
        await startSshd();
      },
      hostKeyFingerprints() {
        return ["ecdsa", "rsa"].map(
          (t) => run("ssh-keygen", ["-lf", join(dir, `host_${t}.pub`)]).split(" ")[1]!,
        );
      },
      dial(port) {
        return new Promise((resolve, reject) => {
          const s = connect(port, ip);
          s.once("connect", () => resolve(s));
          s.once("error", reject);
        });
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * Serve the office's `ports` on `node`'s tailnet address: each TCP
 * connection to the node is joined to a new one to the office (what a
 * gateway's userspace port forwarding does), so the tailnet reaches the office.
 */
export function forwardOffice(node: NodeEngine, office: Office, ports: number[]): void {
  for (const port of ports) {
    node.listenTcp(port, (c) => {
      void office.dial(port).then(
        (socket) => forwardToSocket(c, socket),
        () => c.abort(),
      );
    });
  }
}
