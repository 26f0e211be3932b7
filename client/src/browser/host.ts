// The browser node's engine host, run in a SharedWorker: one node for every
// Trellis tab of this browser profile. It keeps the node key (IndexedDB,
// per user, never posted to a page), registers with the console session,
// runs the engine, answers pages' calls and broadcasts the node's state.
// WebRTC exists only on pages, so the first page that offers hosts the data
// channels; when it goes away, its channels close, the relay carries on,
// and the next page takes over new ones. Browser-safe (worker globals).
import { x25519 } from "@noble/curves/ed25519.js";
import { z } from "zod";
import { decodeKey } from "@trellis/proto";
import type { WireGuardEngine } from "@trellis/wasm";
import { ControlClient, ControlRequestError } from "../control/client";
import { keyHolder } from "../control/signer";
import { NodeEngine } from "../engine/engine";
import type { DirectLink, DirectLinkEvents, DirectLinkFactory } from "../paths/webrtc";
import type { SocketFactory } from "../paths/derp/client";
import type { KeyStore } from "./keystore";
import {
  PAGE_TIMEOUT_MS,
  STATUS_EVERY_MS,
  type Call,
  type NodeState,
  isTakenOver,
  ToWorker,
  ToWorkers,
  type ToPage,
} from "./protocol";

export interface HostPorts {
  postMessage(msg: ToPage, transfer?: Transferable[]): void;
}

export interface EngineHostOptions {
  /** Origin of the Trellis server (the worker's own). */
  baseUrl: string;
  keys: KeyStore;
  /** Load the WASM module (once; the worker needs it only when the node joins). */
  loadWasm(): Promise<unknown>;
  /** The WASM engine (after `loadWasm`). */
  createWasmEngine(privateKey: Uint8Array): WireGuardEngine;
  socketFactory: SocketFactory;
  fetch?: typeof fetch;
  /**
   * Take the browser-wide lock `name` from whoever holds it (Web Locks with
   * `steal`), resolving to its release; `lost` is called if another takes it
   * in turn. One worker per script URL is one per version of the app: tabs
   * still on the last version keep the old worker, and two workers must not
   * run one node key (two map streams, two relay connections that evict each
   * other). The newest join wins. Absent: no lock (tests, one worker).
   */
  hold?(name: string, lost: () => void): Promise<() => void>;
  /**
   * The other workers of this browser (a BroadcastChannel): a stop made in a
   * tab of one version stops the node wherever it runs, so a Sign out in an
   * older tab does not leave it running in a newer worker. Absent: alone.
   */
  workers?: {
    post(msg: ToWorkers): void;
    listen(receive: (msg: unknown) => void): void;
  };
}

interface Page {
  port: HostPorts;
  rtc: boolean;
  lastSeen: number;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The key a page kept before the worker did, or a new one if it is damaged. */
function legacyOrFresh(text: string): Uint8Array {
  try {
    return decodeKey("privkey", text);
  } catch {
    return x25519.utils.randomSecretKey();
  }
}

export class EngineHost {
  private readonly pages = new Set<Page>();
  private user: string | null = null;
  private hostname = "browser";
  /** Lets go of the node's lock (`hold`), while this worker runs the node. */
  private held: (() => void) | null = null;
  /** Key store work a join must wait for (an older page's key being moved in). */
  private keyWork: Promise<unknown> = Promise.resolve();
  /** The join under way, if any, and the run it is for (a stop since abandons it). */
  private joining: Promise<void> | null = null;
  private joiningRun = -1;
  /** Bumped by every stop: a join that started before one gives up. */
  private runs = 0;
  private engine: NodeEngine | null = null;
  private state: NodeState = { phase: "idle" };
  private readonly links = new Map<number, { page: Page; events: DirectLinkEvents }>();
  private nextLink = 1;
  private readonly sweep: ReturnType<typeof setInterval>;
  private readonly statusTimer: ReturnType<typeof setInterval>;
  /** The map pages last received in a "state" message (status messages leave it out). */
  private mapSent: unknown = null;

  constructor(private readonly opts: EngineHostOptions) {
    this.sweep = setInterval(() => this.dropSilentPages(), 1000);
    this.statusTimer = setInterval(() => {
      if (this.engine && this.pages.size > 0) this.publishStatus(this.engine);
    }, STATUS_EVERY_MS);
    opts.workers?.listen((raw) => {
      const msg = ToWorkers.safeParse(raw);
      if (!msg.success || msg.data.user !== this.user) return;
      // The user's choice, made in another version's tab (wantsRunning is stored already, shared):
      // a node running here stops, and a join or an arrival's auto-join under way gives up.
      const running = this.engine !== null || this.joining !== null;
      this.stopEngine(running && !isTakenOver(this.state) ? { phase: "idle" } : null);
    });
  }

  /** The connected engine's status to every page: with the map when it changed, else alone. */
  private publishStatus(engine: NodeEngine): void {
    if (this.engine !== engine || !engine.netmap || this.state.phase !== "connected") return;
    const status = engine.status();
    if (engine.netmap !== this.mapSent) {
      this.setState({ phase: "connected", map: engine.netmap, status });
      return;
    }
    this.state = { ...this.state, status };
    for (const p of this.pages) p.port.postMessage({ t: "status", status });
  }

  /** A page connected: everything it sends goes here. */
  connect(port: HostPorts): (msg: unknown) => void {
    const page: Page = { port, rtc: false, lastSeen: Date.now() };
    this.pages.add(page);
    return (raw) => {
      const parsed = ToWorker.safeParse(raw);
      if (!parsed.success) {
        // A stale tab of an older app, or a bug: a call gets its answer, anything else is dropped.
        const id = (raw as { t?: unknown; id?: unknown } | null)?.id;
        if ((raw as { t?: unknown } | null)?.t === "call" && typeof id === "number")
          port.postMessage({
            t: "result",
            id,
            ok: false,
            error: { message: `the browser's node cannot take this call: ${z.prettifyError(parsed.error)}` },
          });
        return;
      }
      void this.onMessage(page, parsed.data).catch((err: unknown) =>
        // Only the key store can fail here (a call's own failure is its result): the node cannot run.
        this.setState({ phase: "failed", message: `this browser's key store failed: ${errorText(err)}` }),
      );
    };
  }

  private async onMessage(page: Page, msg: ToWorker): Promise<void> {
    page.lastSeen = Date.now();
    if (!this.pages.has(page)) {
      if (msg.t === "detach") return;
      // Silent for a while (a background tab's throttled timers, a machine that slept) and back:
      // it is a page again, and learns the state it missed.
      this.pages.add(page);
      if (msg.t !== "attach") page.port.postMessage({ t: "state", state: this.state });
    }
    switch (msg.t) {
      case "attach": {
        page.rtc = msg.rtc;
        this.hostname = msg.hostname;
        if (this.user !== null && this.user !== msg.user) {
          // Another user logged in on this browser: the node is theirs no more.
          this.stopEngine({ phase: "idle" });
        }
        this.user = msg.user;
        // A stop from any tab while this arrival reads the key store wins over its auto-join.
        const run = this.runs;
        page.port.postMessage({ t: "state", state: this.state });
        if (msg.legacyKey) {
          // A key from before the worker (one per browser, in the page's storage): kept as this
          // user's if they have none; the page forgets its copy once it is stored. A join waits
          // for it (keyWork), or it would make a new key first.
          const legacy = msg.legacyKey;
          const kept = this.keyWork.then(() =>
            this.opts.keys.loadOrCreate(msg.user, () => legacyOrFresh(legacy)),
          );
          this.keyWork = kept.catch(() => undefined);
          await kept;
          page.port.postMessage({ t: "legacy-key-kept" });
        }
        // A browser that joined (and was not disconnected) comes back as the same machine.
        const wants = await this.opts.keys.wantsRunning(msg.user);
        if (wants && !this.engine && this.runs === run && this.user === msg.user) {
          // A failure is the node's state ("failed"), which every page shows.
          void this.join().catch(() => undefined);
        }
        return;
      }
      case "heartbeat":
        return;
      case "detach":
        this.dropPage(page);
        return;
      case "call":
        try {
          const [value, transfer] = await this.call(msg.call);
          page.port.postMessage({ t: "result", id: msg.id, ok: true, value }, transfer);
        } catch (err) {
          page.port.postMessage({
            t: "result",
            id: msg.id,
            ok: false,
            error: {
              message: err instanceof Error ? err.message : String(err),
              ...(err && typeof err === "object" && "code" in err ? { code: String(err.code) } : {}),
            },
          });
        }
        return;
      case "rtc": {
        const l = this.links.get(msg.link);
        if (!l || l.page !== page) return;
        if (msg.ev === "signal") l.events.signal(msg.signal);
        else if (msg.ev === "open") l.events.open();
        else if (msg.ev === "message") for (const d of msg.data) l.events.message(new Uint8Array(d));
        else {
          this.links.delete(msg.link);
          l.events.close(msg.reason);
        }
        return;
      }
    }
  }

  private async call(c: Call): Promise<[unknown, Transferable[]]> {
    switch (c.op) {
      case "join": {
        const user = this.user;
        await this.join();
        // Only a join that went through (not one a stop or another user's login abandoned).
        if (user && this.user === user && this.engine) await this.opts.keys.setWantsRunning(user, true);
        return [null, []];
      }
      case "stop":
        // A node another version's worker took over is not this one's to show as idle: its tabs
        // keep saying so (and offering the reload); the stop reaches that worker below.
        this.stopEngine(isTakenOver(this.state) ? null : { phase: "idle" });
        if (this.user) {
          await this.opts.keys.setWantsRunning(this.user, false);
          this.opts.workers?.post({ t: "stopped", user: this.user });
        }
        return [null, []];
      case "leave":
        await this.leave();
        return [null, []];
      case "status":
        return [this.engine?.status() ?? null, []];
      case "ping":
        return [await this.requireEngine().ping(c.host, { timeoutMs: c.timeoutMs }), []];
      case "connectTcp": {
        const conn = await this.requireEngine().connectTcp(c.host, c.port, { timeoutMs: c.timeoutMs });
        return [
          { readable: conn.readable, writable: conn.writable, remote: conn.remote },
          [conn.readable, conn.writable] as unknown as Transferable[],
        ];
      }
    }
  }

  private requireEngine(): NodeEngine {
    if (!this.engine || this.state.phase !== "connected")
      throw new Error("this browser is not connected to the tailnet");
    return this.engine;
  }

  private setState(s: NodeState): void {
    this.state = s;
    this.mapSent = s.phase === "connected" ? s.map : null;
    for (const p of this.pages) p.port.postMessage({ t: "state", state: s });
  }

  /**
   * Join as the logged-in user's node. One join at a time: a second call
   * (a double click, another tab) waits for the first. A stop meanwhile
   * abandons it.
   */
  private join(): Promise<void> {
    const run = this.runs;
    if (this.joining && this.joiningRun === run) return this.joining;
    // One a stop abandoned may still be loading: this one starts when it has given up, unless
    // a stop came meanwhile too.
    const before = this.joining ?? Promise.resolve();
    const joining: Promise<void> = before
      .catch(() => undefined)
      .then(() => this.joinOnce(run))
      .finally(() => {
        if (this.joining === joining) this.joining = null;
      });
    this.joining = joining;
    this.joiningRun = run;
    return joining;
  }

  /** One attempt at joining, for `run`: it gives up as soon as a stop has come since. */
  private async joinOnce(run: number): Promise<void> {
    if (this.runs !== run) return;
    const user = this.user;
    if (!user) throw new Error("no page told the worker who is logged in");
    if (this.engine) return;
    this.setState({ phase: "connecting", attempt: 1 });
    let engine: NodeEngine;
    try {
      await this.opts.loadWasm();
      await this.keyWork;
      const privateKey = (await this.opts.keys.loadOrCreate(user, () => x25519.utils.randomSecretKey())).key;
      // Stopped while loading: not taking the lock from whoever runs the node now.
      if (this.runs !== run || this.user !== user) return;
      const release = await this.opts.hold?.(`trellis-node:${user}`, () => this.lostToAnother(run));
      // Stopped (Disconnect, Sign out, another user) while waiting for the lock: not joining after all.
      if (this.runs !== run || this.user !== user || this.engine) {
        release?.();
        return;
      }
      this.held = release ?? null;
      const control = new ControlClient({
        baseUrl: this.opts.baseUrl,
        key: keyHolder(privateKey),
        fetch: this.opts.fetch,
        withSession: true,
      });
      engine = new NodeEngine({
        control,
        privateKey,
        prepare: async () => void (await control.register({ hostname: this.hostname, os: "browser" })),
        maxAttempts: 8,
        platform: {
          createWasmEngine: this.opts.createWasmEngine,
          socketFactory: this.opts.socketFactory,
          directLinks: this.directLinks,
        },
      });
    } catch (err) {
      if (this.runs === run) {
        this.releaseHeld();
        this.setState({ phase: "failed", message: errorText(err) });
      }
      throw err;
    }
    this.engine = engine;
    engine.onStatus(() => this.publishStatus(engine));
    try {
      await engine.start();
      if (this.engine === engine)
        this.setState({ phase: "connected", map: engine.netmap!, status: engine.status() });
    } catch (err) {
      if (this.engine !== engine) return;
      this.closeEngine();
      if (
        err instanceof ControlRequestError &&
        (err.code === "node_key_retired" || err.code === "node_key_owned")
      ) {
        // Rotated away elsewhere, or another user's (a key from before keys were per user):
        // start over as a new node.
        await this.opts.keys.forget(user);
        return this.joinOnce(run);
      }
      const ended = /ended this node: (\w+)/.exec(err instanceof Error ? err.message : "");
      if (ended) this.setState({ phase: "ended", reason: ended[1] as "deleted" });
      else this.setState({ phase: "failed", message: errorText(err) });
      throw err;
    }
    void engine.done.then((last) => {
      if (this.engine !== engine) return;
      this.closeEngine();
      if (last.phase === "ended") this.setState({ phase: "ended", reason: last.reason });
      else if (last.phase === "failed") this.setState({ phase: "failed", message: last.error.message });
    });
  }

  /** Close the engine and its data channels; `next` is what pages show now (null: unchanged for the moment). */
  private stopEngine(next: NodeState | null): void {
    this.runs++;
    this.closeEngine();
    for (const [id, l] of this.links) {
      l.page.port.postMessage({ t: "rtc-close", link: id });
      this.links.delete(id);
    }
    if (next) this.setState(next);
  }

  /** Close the running engine, if any, and let go of the node's lock. */
  private closeEngine(): void {
    const engine = this.engine;
    this.engine = null;
    engine?.close();
    this.releaseHeld();
  }

  private releaseHeld(): void {
    const release = this.held;
    this.held = null;
    release?.();
  }

  /** Another worker of this browser (a newer version of the app, in another tab) runs the node now. */
  private lostToAnother(run: number): void {
    if (this.runs !== run) return;
    this.held = null;
    this.stopEngine({ phase: "ended", reason: "taken_over" });
  }

  /** Remove this browser's machine from the tailnet and forget its key. */
  private async leave(): Promise<void> {
    const user = this.user;
    if (!user) return;
    const key = await this.opts.keys.load(user);
    // Pages learn the outcome once the server has removed the machine (or refused to).
    this.stopEngine(null);
    if (key) {
      const control = new ControlClient({
        baseUrl: this.opts.baseUrl,
        key: keyHolder(key),
        fetch: this.opts.fetch,
      });
      try {
        await control.logout({ remove: true });
      } catch (err) {
        // A node the server no longer knows has nothing to log out.
        if (!(err instanceof ControlRequestError && err.status === 401)) {
          this.setState({ phase: "failed", message: `could not leave the tailnet: ${String(err)}` });
          throw err;
        }
      }
    }
    await this.opts.keys.forget(user);
    this.setState({ phase: "ended", reason: "left" });
  }

  private dropSilentPages(): void {
    const now = Date.now();
    for (const p of this.pages) if (now - p.lastSeen > PAGE_TIMEOUT_MS) this.dropPage(p);
  }

  private dropPage(page: Page): void {
    if (!this.pages.delete(page)) return;
    for (const [id, l] of this.links) {
      if (l.page !== page) continue;
      this.links.delete(id);
      // A page that is only slow closes its side too (the peer then stops sending into it).
      page.port.postMessage({ t: "rtc-close", link: id });
      l.events.close("the page that hosted the data channel went away");
    }
  }

  /** Data channels, made on the page that hosts WebRTC. */
  private readonly directLinks: DirectLinkFactory = (opts, events) => {
    const page = [...this.pages].find((p) => p.rtc);
    const id = this.nextLink++;
    if (!page) {
      queueMicrotask(() => events.close("no open page can make WebRTC connections"));
      return { signal() {}, send: () => false, close() {} };
    }
    this.links.set(id, { page, events });
    page.port.postMessage({ t: "rtc-open", link: id, opts });
    let batch: ArrayBuffer[] = [];
    const link: DirectLink = {
      signal: (signal) => page.port.postMessage({ t: "rtc-signal", link: id, signal }),
      send: (data) => {
        if (!this.links.has(id)) return false;
        if (batch.length === 0) {
          queueMicrotask(() => {
            const out = batch;
            batch = [];
            page.port.postMessage({ t: "rtc-send", link: id, data: out }, out);
          });
        }
        batch.push(data.slice().buffer);
        return true;
      },
      close: () => {
        if (!this.links.delete(id)) return;
        page.port.postMessage({ t: "rtc-close", link: id });
        events.close("closed");
      },
    };
    return link;
  };

  close(): void {
    clearInterval(this.sweep);
    clearInterval(this.statusTimer);
    this.stopEngine({ phase: "idle" });
  }
}
