// The browser node's worker host with pages as plain ports: joins fail
// visibly and can be retried, one join at a time, a stop wins over a join
// still loading, and a page the worker gave up on comes back when it speaks.
import { IDBFactory } from "fake-indexeddb";
import { afterEach, describe, expect, it, vi } from "vitest";
import { encodeKey } from "@trellis/proto";
import { WireGuardEngine } from "@trellis/wasm/node";
import { openWebSocket as nodeSocketFactory } from "../node/platform";
import { EngineHost, type EngineHostOptions } from "./host";
import { KeyStore } from "./keystore";
import { PAGE_TIMEOUT_MS, type NodeState, type ToPage, type ToWorker } from "./protocol";

const hosts: EngineHost[] = [];

afterEach(() => {
  for (const h of hosts.splice(0)) h.close();
  vi.useRealTimers();
});

function host(loadWasm: EngineHostOptions["loadWasm"], more: Partial<EngineHostOptions> = {}): EngineHost {
  const keys =
    more.keys ??
    new KeyStore({
      indexedDB: new IDBFactory(),
      subtle: globalThis.crypto.subtle,
      random: (n) => globalThis.crypto.getRandomValues(new Uint8Array(n)),
    });
  const h = new EngineHost({
    baseUrl: "http://127.0.0.1:1",
    keys,
    loadWasm,
    createWasmEngine: () => {
      throw new Error("no engine in these tests");
    },
    socketFactory: () => {
      throw new Error("no sockets in these tests");
    },
    ...more,
  });
  hosts.push(h);
  keyStores.set(h, keys);
  return h;
}

const keyStores = new WeakMap<EngineHost, KeyStore>();

/** Key stores of one browser profile (one IndexedDB), one for each worker. */
function browserKeys(): () => KeyStore {
  const indexedDB = new IDBFactory();
  return () =>
    new KeyStore({
      indexedDB,
      subtle: globalThis.crypto.subtle,
      random: (n) => globalThis.crypto.getRandomValues(new Uint8Array(n)),
    });
}
const keysOf = (h: EngineHost) => keyStores.get(h)!;

/** A page: what it sent the worker goes through `send`; what it got is in `got`. */
function page(h: EngineHost, user = "alice") {
  const got: ToPage[] = [];
  const deliver = h.connect({ postMessage: (m) => void got.push(m) });
  let id = 0;
  const send = (m: ToWorker) => deliver(m);
  send({ t: "attach", user, hostname: "browser-linux", rtc: false });
  const states = () => got.flatMap((m) => (m.t === "state" ? [m.state] : []));
  return {
    got,
    send,
    states,
    last: (): NodeState | undefined => states().at(-1),
    /** A call's result, once the worker answers (a join against no server: when it is stopped). */
    async call(call: Extract<ToWorker, { t: "call" }>["call"]) {
      const n = ++id;
      send({ t: "call", id: n, call });
      await vi.waitFor(() => expect(got.some((m) => m.t === "result" && m.id === n)).toBe(true), {
        timeout: 10_000,
      });
      return got.find((m) => m.t === "result" && m.id === n) as Extract<ToPage, { t: "result" }>;
    },
  };
}

/** Web Locks' `request(name, { steal: true })` as `hold` uses it: a taker evicts the holder. */
function stealingLocks() {
  const holders = new Map<string, () => void>();
  const hold: NonNullable<EngineHostOptions["hold"]> = async (name, lost) => {
    const evicted = holders.get(name);
    const mine = () => lost();
    holders.set(name, mine);
    evicted?.();
    return () => {
      if (holders.get(name) === mine) holders.delete(name);
    };
  };
  return { hold, held: (name: string) => holders.has(name) };
}

describe("EngineHost", () => {
  it("lets the newest worker of the browser run the node: the one it took it from stops and says why", async () => {
    const locks = stealingLocks();
    // A real WASM engine that keeps trying an unreachable server: a node joining, holding the lock.
    const running = {
      hold: locks.hold,
      createWasmEngine: (key: Uint8Array) => new WireGuardEngine(key, { stack: true }),
      socketFactory: nodeSocketFactory,
    };
    const store = browserKeys();
    const older = host(async () => undefined, { ...running, keys: store() });
    const newer = host(async () => undefined, { ...running, keys: store() });
    const oldTab = page(older);
    const oldJoin = oldTab.call({ op: "join" });
    await vi.waitFor(() => expect(locks.held("trellis-node:alice")).toBe(true));
    expect(oldTab.last()).toMatchObject({ phase: "connecting" });
    const newTab = page(newer);
    void newTab.call({ op: "join" });
    await vi.waitFor(() => expect(oldTab.last()).toEqual({ phase: "ended", reason: "taken_over" }));
    expect(newTab.last()).toMatchObject({ phase: "connecting" });
    // The old tab's Connect, taken over before the first map, is answered (it was left pending).
    expect((await oldJoin).ok).toBe(true);
    await newTab.call({ op: "stop" });
    expect(locks.held("trellis-node:alice")).toBe(false);
  });

  it("stops the node wherever it runs when a user stops it in a tab of an older version (Sign out)", async () => {
    const locks = stealingLocks();
    // The workers' BroadcastChannel: a message reaches every other worker, not its sender.
    const listeners = new Map<EngineHost | "stranger", (msg: unknown) => void>();
    const channel = (self: () => EngineHost): NonNullable<EngineHostOptions["workers"]> => ({
      post: (msg) => {
        for (const [h, receive] of listeners) if (h !== self()) receive(msg);
      },
      listen: (receive) => void queueMicrotask(() => listeners.set(self(), receive)),
    });
    const running = {
      hold: locks.hold,
      createWasmEngine: (key: Uint8Array) => new WireGuardEngine(key, { stack: true }),
      socketFactory: nodeSocketFactory,
    };
    const store = browserKeys();
    const older: EngineHost = host(async () => undefined, {
      ...running,
      keys: store(),
      workers: channel(() => older),
    });
    const newer: EngineHost = host(async () => undefined, {
      ...running,
      keys: store(),
      workers: channel(() => newer),
    });
    const oldTab = page(older);
    void oldTab.call({ op: "join" });
    await vi.waitFor(() => expect(locks.held("trellis-node:alice")).toBe(true));
    const newTab = page(newer);
    void newTab.call({ op: "join" });
    await vi.waitFor(() => expect(oldTab.last()).toEqual({ phase: "ended", reason: "taken_over" }));
    expect(locks.held("trellis-node:alice")).toBe(true);

    // Nothing the newer worker should act on: another user's stop, messages of the wrong shape.
    const toNewer = listeners.get(newer)!;
    toNewer({ t: "stopped", user: "bob" });
    toNewer({ t: "stopped" });
    toNewer("stopped alice");
    expect(newTab.last()).toMatchObject({ phase: "connecting" });

    await oldTab.call({ op: "stop" });
    await vi.waitFor(() => expect(newTab.last()).toEqual({ phase: "idle" }));
    expect(oldTab.last()).toEqual({ phase: "ended", reason: "taken_over" });
    expect(locks.held("trellis-node:alice")).toBe(false);
    expect(await keysOf(newer).wantsRunning("alice")).toBe(false);
  });

  it("shows a join that fails before the engine starts as failed on every page, and tries again", async () => {
    let loads = 0;
    const h = host(async () => {
      loads++;
      throw new Error("the WASM module did not load (network error)");
    });
    const a = page(h);
    const b = page(h);
    const r = await a.call({ op: "join" });
    expect(r.ok).toBe(false);
    for (const p of [a, b])
      expect(p.last()).toEqual({ phase: "failed", message: "the WASM module did not load (network error)" });
    await a.call({ op: "join" });
    expect(loads).toBe(2);
  });

  it("runs one join at a time: a second click waits for the first", async () => {
    let loads = 0;
    let fail: (e: Error) => void = () => undefined;
    const h = host(() => {
      loads++;
      return new Promise((_, reject) => (fail = reject));
    });
    const a = page(h);
    const first = a.call({ op: "join" });
    const second = a.call({ op: "join" });
    await vi.waitFor(() => expect(loads).toBe(1));
    fail(new Error("stop here"));
    expect((await first).ok).toBe(false);
    expect((await second).ok).toBe(false);
    expect(loads).toBe(1);
  });

  it("does not join after a stop that came while the join was loading", async () => {
    let loaded: () => void = () => undefined;
    const h = host(() => new Promise<void>((resolve) => (loaded = resolve)));
    const a = page(h);
    const join = a.call({ op: "join" });
    await vi.waitFor(() => expect(a.last()).toEqual({ phase: "connecting", attempt: 1 }));
    await a.call({ op: "stop" });
    expect(a.last()).toEqual({ phase: "idle" });
    loaded();
    expect((await join).ok).toBe(true);
    // Still stopped, and not to be started again by the next page either.
    expect(a.last()).toEqual({ phase: "idle" });
    expect(await a.call({ op: "status" })).toMatchObject({ ok: true, value: null });
    const b = page(h);
    await vi.waitFor(() => expect(b.states().length).toBeGreaterThan(0));
    expect(b.last()).toEqual({ phase: "idle" });
  });

  it("joins on a Connect that follows a Disconnect made while a join was loading, and the abandoned join takes no lock", async () => {
    const loads: (() => void)[] = [];
    let holds = 0;
    let engines = 0;
    const h = host(() => new Promise<void>((resolve) => loads.push(resolve)), {
      hold: async () => {
        holds++;
        return () => undefined;
      },
      createWasmEngine: () => {
        engines++;
        throw new Error("no engine in these tests");
      },
    });
    const a = page(h);
    const first = a.call({ op: "join" });
    await vi.waitFor(() => expect(loads).toHaveLength(1));
    await a.call({ op: "stop" });
    const second = a.call({ op: "join" });
    // The abandoned join gives up before the lock (it would take it from a node running elsewhere).
    loads[0]!();
    expect((await first).ok).toBe(true);
    expect(holds).toBe(0);
    // The second is a join of its own, not the abandoned one's answer.
    await vi.waitFor(() => expect(loads).toHaveLength(2));
    loads[1]!();
    expect((await second).ok).toBe(false);
    expect(holds).toBe(1);
    expect(engines).toBe(1);
    expect(a.last()).toEqual({ phase: "failed", message: "no engine in these tests" });
  });

  it("stays stopped after Connect, Disconnect, Connect, Disconnect while the first join was loading", async () => {
    const loads: (() => void)[] = [];
    let holds = 0;
    const h = host(() => new Promise<void>((resolve) => loads.push(resolve)), {
      hold: async () => {
        holds++;
        return () => undefined;
      },
    });
    const a = page(h);
    const first = a.call({ op: "join" });
    await vi.waitFor(() => expect(loads).toHaveLength(1));
    await a.call({ op: "stop" });
    const second = a.call({ op: "join" });
    await a.call({ op: "stop" });
    loads[0]!();
    expect((await first).ok).toBe(true);
    expect((await second).ok).toBe(true);
    // The second join, waiting behind the first, gave up without loading: the last click was a stop.
    expect(loads).toHaveLength(1);
    expect(holds).toBe(0);
    expect(a.last()).toEqual({ phase: "idle" });
    expect(await keysOf(h).wantsRunning("alice")).toBe(false);
  });

  it("joins with the key an older page kept, even when the join comes right after the page arrives", async () => {
    let joinedWith: Uint8Array | null = null;
    const h = host(async () => undefined, {
      createWasmEngine: (key) => {
        joinedWith = key;
        throw new Error("no engine in these tests");
      },
    });
    const legacy = new Uint8Array(32).fill(5);
    legacy[0] = 0x40; // a clamped X25519 key, as the old page made
    const got: ToPage[] = [];
    const deliver = h.connect({ postMessage: (m) => void got.push(m) });
    deliver({
      t: "attach",
      user: "alice",
      hostname: "browser-linux",
      rtc: false,
      legacyKey: encodeKey("privkey", legacy),
    });
    deliver({ t: "call", id: 1, call: { op: "join" } });
    await vi.waitFor(() => expect(got.some((m) => m.t === "legacy-key-kept")).toBe(true));
    await vi.waitFor(() => expect(got.some((m) => m.t === "result" && m.id === 1)).toBe(true));
    // The join took the old page's key (and failed at the engine, as there is none in these tests).
    expect(joinedWith).toEqual(legacy);
    expect(await keysOf(h).load("alice")).toEqual(legacy);
  });

  it("does not join by itself after a stop made while a page was arriving", async () => {
    let loads = 0;
    const h = host(async () => {
      loads++;
      throw new Error("offline");
    });
    await keysOf(h).setWantsRunning("alice", true);
    const got: ToPage[] = [];
    const deliver = h.connect({ postMessage: (m) => void got.push(m) });
    // The page arrives (the worker reads whether the node should run) and Disconnect is clicked at once.
    deliver({ t: "attach", user: "alice", hostname: "browser-linux", rtc: false });
    deliver({ t: "call", id: 1, call: { op: "stop" } });
    await vi.waitFor(() => expect(got.some((m) => m.t === "result" && m.id === 1)).toBe(true));
    expect(await keysOf(h).wantsRunning("alice")).toBe(false);
    await new Promise((r) => setTimeout(r, 50));
    expect(loads).toBe(0);
    expect(got.filter((m) => m.t === "state").at(-1)).toEqual({ t: "state", state: { phase: "idle" } });
  });

  it("answers a call it cannot take with an error, and ignores other messages it does not know", async () => {
    const h = host(async () => undefined);
    const got: ToPage[] = [];
    const deliver = h.connect({ postMessage: (m) => void got.push(m) });
    deliver({ t: "call", id: 7, call: { op: "connectTcp", host: "office", port: 70000 } });
    deliver({ t: "rtc", link: 1, ev: "message", data: ["not a buffer"] });
    deliver("junk");
    deliver(null);
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ t: "result", id: 7, ok: false });
    expect((got[0] as { error: { message: string } }).error.message).toMatch(/cannot take this call.*port/s);
  });

  it("takes back a page it gave up on when the page speaks again, with the state it missed", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "Date"] });
    const h = host(async () => {
      throw new Error("offline");
    });
    const quiet = page(h);
    const active = page(h);
    vi.advanceTimersByTime(PAGE_TIMEOUT_MS + 1500); // no heartbeats from either: both dropped
    active.send({ t: "heartbeat" });
    await active.call({ op: "join" }).catch(() => undefined);
    // The quiet page was not told (it is not a page of the worker's now)…
    expect(quiet.last()).toEqual({ phase: "idle" });
    // …until its next heartbeat, which brings it back with the state it missed.
    quiet.send({ t: "heartbeat" });
    expect(quiet.last()).toEqual({ phase: "failed", message: "offline" });
  });
});
