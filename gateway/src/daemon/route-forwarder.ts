// Subnet routing in userspace mode (--userspace, no TUN device, no root):
// the engine's stack stands in for the addresses of the approved routes,
// and this reaches the real targets with the gateway's own sockets — TCP
// connections, a UDP socket per flow, and the system's `ping` for echo
// requests (as Tailscale's userspace mode does: an unprivileged process has
// no raw ICMP socket). Targets see the gateway's LAN address, as with the
// masquerade of TUN mode.
import { spawn } from "node:child_process";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { connect } from "node:net";
import { forwardToSocket } from "@trellis/client/node";
import type { FlowEnd, ForwardedTcp, RouteForwarder } from "@trellis/client";
import type { Logger } from "@trellis/log";

/** How long a dial may take before the client is refused. */
export const DIAL_TIMEOUT_MS = 10_000;
/** A UDP flow with no datagram either way for this long is closed. */
export const UDP_IDLE_MS = 60_000;
/** UDP flows open at once; the least recently used goes first. */
export const MAX_UDP_FLOWS = 1024;
/** Echo requests being tried at once; more are not answered. */
export const MAX_PINGS = 64;
const PING_WAIT_S = 3;

interface UdpFlow {
  socket: UdpSocket;
  timer: NodeJS.Timeout;
  reply: (data: Uint8Array) => void;
}

export class UserspaceRouter implements RouteForwarder {
  private readonly udpFlows = new Map<string, UdpFlow>();
  private pings = 0;
  private closed = false;

  constructor(private readonly log: Logger) {}

  tcp(to: FlowEnd, from: FlowEnd): Promise<ForwardedTcp> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new Error("the router is closed"));
      const socket = connect({ host: to.address, port: to.port, timeout: DIAL_TIMEOUT_MS });
      const fail = (err: Error) => {
        socket.destroy();
        reject(err);
      };
      socket.once("timeout", () => fail(new Error(`no answer within ${DIAL_TIMEOUT_MS / 1000} s`)));
      socket.once("error", fail);
      socket.once("connect", () => {
        socket.off("error", fail);
        socket.setTimeout(0);
        resolve({
          attach: (c) =>
            forwardToSocket(c, socket, (err) =>
              this.log.debug(
                { from: `${from.address}:${from.port}`, to: `${to.address}:${to.port}`, err: String(err) },
                "forwarded connection ended",
              ),
            ),
          abort: () => socket.destroy(),
        });
      });
    });
  }

  udp(to: FlowEnd, from: FlowEnd, data: Uint8Array, reply: (data: Uint8Array) => void): void {
    if (this.closed) return;
    const key = `${from.address}|${from.port}|${to.address}|${to.port}`;
    let flow = this.udpFlows.get(key);
    if (flow) {
      // Most recently used last, so the oldest is first to go.
      this.udpFlows.delete(key);
      this.udpFlows.set(key, flow);
      flow.timer.refresh();
    } else {
      if (this.udpFlows.size >= MAX_UDP_FLOWS) {
        const [oldest] = this.udpFlows.keys();
        this.closeFlow(oldest!);
      }
      const socket = createSocket(to.address.includes(":") ? "udp6" : "udp4");
      const f: UdpFlow = {
        socket,
        reply,
        timer: setTimeout(() => this.closeFlow(key), UDP_IDLE_MS),
      };
      flow = f;
      socket.on("message", (msg, rinfo) => {
        // Only the target's answers belong to this flow (the socket is not connected).
        if (rinfo.port !== to.port || rinfo.address !== to.address) return;
        f.timer.refresh();
        f.reply(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength));
      });
      socket.on("error", (err) => {
        this.log.debug({ to: `${to.address}:${to.port}`, err: err.message }, "forwarded UDP flow failed");
        this.closeFlow(key);
      });
      this.udpFlows.set(key, f);
    }
    flow.socket.send(data, to.port, to.address, (err) => {
      if (err)
        this.log.debug({ to: `${to.address}:${to.port}`, err: err.message }, "forwarded datagram not sent");
    });
  }

  private closeFlow(key: string): void {
    const f = this.udpFlows.get(key);
    if (!f) return;
    this.udpFlows.delete(key);
    clearTimeout(f.timer);
    f.socket.close();
  }

  ping(to: string): Promise<boolean> {
    if (this.closed || this.pings >= MAX_PINGS) return Promise.resolve(false);
    this.pings++;
    return new Promise<boolean>((resolve) => {
      const child = spawn(
        "ping",
        [to.includes(":") ? "-6" : "-4", "-n", "-q", "-c", "1", "-W", String(PING_WAIT_S), to],
        { stdio: "ignore" },
      );
      let settled = false;
      // A ping that cannot start emits "error", and perhaps "exit" too.
      const done = (ok: boolean) => {
        if (settled) return;
        settled = true;
        clearTimeout(kill);
        this.pings--;
        resolve(ok);
      };
      const kill = setTimeout(() => child.kill("SIGKILL"), (PING_WAIT_S + 2) * 1000);
      child.once("error", (err) => {
        this.log.debug({ to, err: err.message }, "could not run ping");
        done(false);
      });
      child.once("exit", (code) => done(code === 0));
    });
  }

  /** Close every UDP flow; open TCP connections end with their tailnet side. */
  close(): void {
    this.closed = true;
    for (const key of [...this.udpFlows.keys()]) this.closeFlow(key);
  }
}
