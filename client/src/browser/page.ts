// A Trellis page's handle on the browser node: it talks to the node's
// SharedWorker (every tab of this browser is the same node), shows its
// state, and asks it to ping or connect. A page that can make WebRTC
// connections (every page; workers cannot) also hosts the node's data
// channels while it is open: their messages cross to the worker as
// transferred ArrayBuffers. Browser-safe (page globals).
import { BROWSER_KEY_ITEM } from "./identity";
import {
  HEARTBEAT_MS,
  type Call,
  type NodeState,
  type PingResult,
  type ToPage,
  type ToWorker,
  type TransferredConnection,
} from "./protocol";
import type { EngineStatus } from "../engine/engine";
import { rtcLinks, type DirectLink, type PeerConnectionClass } from "../paths/webrtc";

export interface PortLike {
  postMessage(msg: ToWorker, transfer?: Transferable[]): void;
  onmessage: ((e: MessageEvent<ToPage>) => void) | null;
  start?(): void;
}

export interface BrowserNodeClientOptions {
  /** The SharedWorker's port. */
  port: PortLike;
  /** The logged-in user (their node key is theirs alone). */
  user: string;
  hostname: string;
  /** RTCPeerConnection, when this page may host the node's data channels. */
  peerConnection?: PeerConnectionClass;
  /** Where a key from before the worker lived (moved into the worker once, then removed). */
  legacyStorage?: Pick<Storage, "getItem" | "removeItem">;
}

export class NodeCallError extends Error {
  override readonly name = "NodeCallError";
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

export class BrowserNodeClient {
  private state: NodeState = { phase: "idle" };
  private readonly listeners = new Set<(s: NodeState) => void>();
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private readonly links = new Map<number, DirectLink>();
  private readonly heartbeat: ReturnType<typeof setInterval>;
  private detached = false;

  constructor(private readonly opts: BrowserNodeClientOptions) {
    const legacyKey = opts.legacyStorage?.getItem(BROWSER_KEY_ITEM) ?? undefined;
    opts.port.onmessage = (e) => this.onMessage(e.data);
    opts.port.start?.();
    this.post({
      t: "attach",
      user: opts.user,
      hostname: opts.hostname,
      rtc: opts.peerConnection !== undefined,
      ...(legacyKey ? { legacyKey } : {}),
    });
    this.heartbeat = setInterval(() => this.post({ t: "heartbeat" }), HEARTBEAT_MS);
  }

  private post(msg: ToWorker, transfer: Transferable[] = []): void {
    if (!this.detached) this.opts.port.postMessage(msg, transfer);
  }

  get current(): NodeState {
    return this.state;
  }

  onState(fn: (s: NodeState) => void): () => void {
    this.listeners.add(fn);
    fn(this.state);
    return () => this.listeners.delete(fn);
  }

  private onMessage(m: ToPage): void {
    switch (m.t) {
      case "state":
        this.state = m.state;
        for (const fn of this.listeners) fn(m.state);
        return;
      case "status":
        if (this.state.phase !== "connected") return;
        this.state = { ...this.state, status: m.status };
        for (const fn of this.listeners) fn(this.state);
        return;
      case "result": {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        if (m.ok) p.resolve(m.value);
        else p.reject(new NodeCallError(m.error.message, m.error.code));
        return;
      }
      case "rtc-open": {
        const PC = this.opts.peerConnection;
        if (!PC) return;
        const id = m.link;
        let batch: ArrayBuffer[] = [];
        const link = rtcLinks(PC)(m.opts, {
          signal: (signal) => this.post({ t: "rtc", link: id, ev: "signal", signal }),
          open: () => this.post({ t: "rtc", link: id, ev: "open" }),
          message: (data) => {
            if (batch.length === 0) {
              queueMicrotask(() => {
                const out = batch;
                batch = [];
                this.post({ t: "rtc", link: id, ev: "message", data: out }, out);
              });
            }
            // A data channel hands each message its own buffer: transfer it, do not copy.
            batch.push(
              data.byteOffset === 0 && data.byteLength === data.buffer.byteLength
                ? (data.buffer as ArrayBuffer)
                : data.slice().buffer,
            );
          },
          close: (reason) => {
            this.links.delete(id);
            this.post({ t: "rtc", link: id, ev: "close", reason });
          },
        });
        this.links.set(id, link);
        return;
      }
      case "rtc-signal":
        this.links.get(m.link)?.signal(m.signal);
        return;
      case "rtc-send": {
        const link = this.links.get(m.link);
        if (link) for (const d of m.data) link.send(new Uint8Array(d));
        return;
      }
      case "rtc-close":
        this.links.get(m.link)?.close();
        this.links.delete(m.link);
        return;
      case "legacy-key-kept":
        // The key now lives in the worker; the page keeps no copy.
        this.opts.legacyStorage?.removeItem(BROWSER_KEY_ITEM);
        return;
    }
  }

  private call<T>(call: Call): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.post({ t: "call", id, call });
    });
  }

  /** Join the tailnet as this browser's node (registering its key with the session). */
  join(): Promise<void> {
    return this.call({ op: "join" });
  }

  /** Close the node's connections; it stays registered (and shows offline). */
  stop(): Promise<void> {
    return this.call({ op: "stop" });
  }

  /** Log the node out and forget its key in this browser. */
  leave(): Promise<void> {
    return this.call({ op: "leave" });
  }

  /** The node's status now (null when it is not running). */
  status(): Promise<EngineStatus | null> {
    return this.call({ op: "status" });
  }

  ping(host: string, timeoutMs?: number): Promise<PingResult> {
    return this.call({ op: "ping", host, timeoutMs });
  }

  /** A TCP connection through the tailnet: streams that read and write it from this page. */
  connectTcp(host: string, port: number, timeoutMs?: number): Promise<TransferredConnection> {
    return this.call({ op: "connectTcp", host, port, timeoutMs });
  }

  /** This page goes away: its data channels close and the node carries on through others or the relay. */
  detach(): void {
    if (this.detached) return;
    this.post({ t: "detach" });
    this.detached = true;
    clearInterval(this.heartbeat);
    for (const l of this.links.values()) l.close();
    this.links.clear();
  }
}
