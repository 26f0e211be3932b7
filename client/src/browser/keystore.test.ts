// The browser node's key store on a real IndexedDB implementation
// (fake-indexeddb) with Node's WebCrypto: one key per user, sealed with a
// wrapping key that cannot be exported, survives a new store object (a new
// worker), and a damaged record is reported as absent, not as a key.
import { IDBFactory } from "fake-indexeddb";
import { describe, expect, it } from "vitest";
import { KeyStore } from "./keystore";

function store(indexedDB: IDBFactory): KeyStore {
  return new KeyStore({
    indexedDB,
    subtle: globalThis.crypto.subtle,
    random: (n) => globalThis.crypto.getRandomValues(new Uint8Array(n)),
  });
}

const keyOf = (b: number) => new Uint8Array(32).fill(b);

async function rawRecords(indexedDB: IDBFactory): Promise<Map<string, unknown>> {
  const db = await new Promise<IDBDatabase>((resolve, reject) => {
    const open = indexedDB.open("trellis-node", 1);
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
  const tx = db.transaction("keys", "readonly");
  const os = tx.objectStore("keys");
  const [keys, values] = await Promise.all(
    [os.getAllKeys(), os.getAll()].map(
      (r) =>
        new Promise<unknown[]>((resolve, reject) => {
          r.onsuccess = () => resolve(r.result as unknown[]);
          r.onerror = () => reject(r.error);
        }),
    ),
  );
  db.close();
  return new Map(keys!.map((k, i) => [String(k), values![i]]));
}

describe("KeyStore", () => {
  it("keeps one key per user, sealed, across store objects", async () => {
    const idb = new IDBFactory();
    const a = store(idb);
    expect(await a.load("alice")).toBeNull();
    const made = await a.loadOrCreate("alice", () => keyOf(1));
    expect(made).toEqual({ key: keyOf(1), created: true });
    expect(await a.loadOrCreate("alice", () => keyOf(9))).toEqual({ key: keyOf(1), created: false });
    await a.loadOrCreate("bob", () => keyOf(2));

    // A new worker (a new store object on the same database) finds the same keys.
    const b = store(idb);
    expect(await b.load("alice")).toEqual(keyOf(1));
    expect(await b.load("bob")).toEqual(keyOf(2));

    // What the database holds is ciphertext, and the wrapping key cannot be exported.
    const raw = await rawRecords(idb);
    const sealed = raw.get("node-key:alice") as { iv: Uint8Array; data: ArrayBuffer };
    expect(new Uint8Array(sealed.data)).not.toEqual(keyOf(1));
    expect(Buffer.from(new Uint8Array(sealed.data)).includes(Buffer.from(keyOf(1)))).toBe(false);
    const wrap = raw.get("wrapping-key") as CryptoKey;
    expect(wrap.extractable).toBe(false);
    await expect(globalThis.crypto.subtle.exportKey("raw", wrap)).rejects.toThrow();

    await b.forget("alice");
    expect(await a.load("alice")).toBeNull();
    expect(await a.load("bob")).toEqual(keyOf(2));
  });

  it("remembers whether the node should run, until the user leaves", async () => {
    const s = store(new IDBFactory());
    expect(await s.wantsRunning("alice")).toBe(false);
    await s.setWantsRunning("alice", true);
    expect(await s.wantsRunning("alice")).toBe(true);
    expect(await s.wantsRunning("bob")).toBe(false);
    await s.forget("alice");
    expect(await s.wantsRunning("alice")).toBe(false);
  });

  it("treats a record it cannot open as no key", async () => {
    const idb = new IDBFactory();
    const s = store(idb);
    await s.store("alice", keyOf(3));
    // Another wrapping key (as after the browser cleared part of the site's data) cannot open it.
    const db = await new Promise<IDBDatabase>((resolve) => {
      const open = idb.open("trellis-node", 1);
      open.onsuccess = () => resolve(open.result);
    });
    const other = await globalThis.crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, [
      "encrypt",
      "decrypt",
    ]);
    await new Promise((resolve, reject) => {
      const r = db.transaction("keys", "readwrite").objectStore("keys").put(other, "wrapping-key");
      r.onsuccess = resolve;
      r.onerror = reject;
    });
    db.close();
    expect(await store(idb).load("alice")).toBeNull();
    const fresh = await store(idb).loadOrCreate("alice", () => keyOf(4));
    expect(fresh).toEqual({ key: keyOf(4), created: true });
  });

  it("reports storage that fails instead of making a new key over the stored one, and tries again", async () => {
    const idb = new IDBFactory();
    await store(idb).store("alice", keyOf(5));
    // Storage refuses once (as a browser under storage pressure may), then works.
    let refuse = 1;
    const flaky = new Proxy(idb, {
      get(target, prop) {
        if (prop === "open" && refuse-- > 0)
          return () => {
            const r = {} as { onerror?: () => void; error: Error };
            r.error = new Error("storage refused");
            queueMicrotask(() => r.onerror?.());
            return r;
          };
        const v = Reflect.get(target, prop) as unknown;
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const s = store(flaky);
    await expect(s.loadOrCreate("alice", () => keyOf(6))).rejects.toThrow("storage refused");
    expect(await s.loadOrCreate("alice", () => keyOf(6))).toEqual({ key: keyOf(5), created: false });
  });

  it("seals with one wrapping key when two stores make the first one at once", async () => {
    const idb = new IDBFactory();
    // A page (SSH keys) and the worker (the node key) on a browser that has no wrapping key yet.
    await Promise.all([store(idb).store("alice", keyOf(7)), store(idb).store("bob", keyOf(8))]);
    const later = store(idb);
    expect(await later.load("alice")).toEqual(keyOf(7));
    expect(await later.load("bob")).toEqual(keyOf(8));
  });
});
