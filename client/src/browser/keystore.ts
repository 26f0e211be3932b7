// A browser node's WireGuard key, kept by the engine's worker in IndexedDB:
// one key per user of this browser (a shared browser never turns one user's
// machine into another's), sealed with an AES-GCM key that is itself stored
// as a non-extractable CryptoKey. The page never receives the key; what sits
// in the database is ciphertext whose wrapping key cannot be exported.
// Browser-safe (worker or page); `indexedDB` and `crypto.subtle` are injected
// for tests.

const DB = "trellis-node";
const STORE = "keys";
const WRAP = "wrapping-key";

export interface KeyStoreDeps {
  indexedDB: IDBFactory;
  subtle: SubtleCrypto;
  random: (n: number) => Uint8Array;
}

function req<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error("IndexedDB request failed"));
  });
}

function committed(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error ?? new Error("IndexedDB transaction failed"));
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
  });
}

/** The browser offers no Web Crypto here (a plain-http page outside localhost). */
export class InsecureContextError extends Error {
  override readonly name = "InsecureContextError";
}

export class KeyStore {
  private dbLoad: Promise<IDBDatabase> | null = null;

  constructor(private readonly deps: KeyStoreDeps) {}

  static browser(): KeyStore {
    // Web Crypto exists only in secure contexts: https, or http://localhost.
    if (!globalThis.crypto?.subtle) {
      throw new InsecureContextError(
        "this page is not a secure context, so the browser cannot keep a node key: open Trellis over https (or at localhost)",
      );
    }
    return new KeyStore({
      indexedDB: globalThis.indexedDB,
      subtle: globalThis.crypto.subtle,
      random: (n) => globalThis.crypto.getRandomValues(new Uint8Array(n)),
    });
  }

  private db(): Promise<IDBDatabase> {
    if (!this.dbLoad) {
      const load = new Promise<IDBDatabase>((resolve, reject) => {
        const open = this.deps.indexedDB.open(DB, 1);
        open.onupgradeneeded = () => open.result.createObjectStore(STORE);
        open.onsuccess = () => resolve(open.result);
        open.onerror = () => reject(open.error ?? new Error("cannot open IndexedDB"));
      });
      // A database that would not open is not kept: the next use tries again.
      load.catch(() => (this.dbLoad = null));
      this.dbLoad = load;
    }
    return this.dbLoad;
  }

  private async get(key: string): Promise<unknown> {
    const tx = (await this.db()).transaction(STORE, "readonly");
    return req(tx.objectStore(STORE).get(key));
  }

  /** Write and wait for the commit: a request that succeeds may still be lost by a transaction that aborts (quota). */
  private async write(key: string, value: unknown, how: "put" | "add"): Promise<void> {
    const tx = (await this.db()).transaction(STORE, "readwrite");
    const done = committed(tx);
    const store = tx.objectStore(STORE);
    await Promise.all([req(how === "add" ? store.add(value, key) : store.put(value, key)), done]);
  }

  private put(key: string, value: unknown): Promise<void> {
    return this.write(key, value, "put");
  }

  private async wrappingKey(): Promise<CryptoKey> {
    const existing = (await this.get(WRAP)) as CryptoKey | undefined;
    if (existing) return existing;
    const k = await this.deps.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, [
      "encrypt",
      "decrypt",
    ]);
    try {
      // Added, not put: a page and the worker making the first one at once must end up sealing with the same key.
      await this.write(WRAP, k, "add");
      return k;
    } catch (err) {
      const won = (await this.get(WRAP)) as CryptoKey | undefined;
      if (won) return won;
      throw err;
    }
  }

  private slot(user: string): string {
    return `node-key:${user}`;
  }

  /** This user's node key, or null when this browser has none for them (or a damaged one). */
  async load(user: string): Promise<Uint8Array | null> {
    const key = await this.loadSealed(this.slot(user));
    return key?.length === 32 ? key : null;
  }

  /** Keep `privateKey` as this user's node key. */
  async store(user: string, privateKey: Uint8Array): Promise<void> {
    await this.storeSealed(this.slot(user), privateKey);
  }

  /**
   * A secret kept sealed under this browser's wrapping key (node keys, SSH
   * keys): null when there is none or it does not open.
   */
  async loadSealed(slot: string): Promise<Uint8Array | null> {
    const sealed = (await this.get(slot)) as { iv: Uint8Array; data: ArrayBuffer } | undefined;
    if (!sealed) return null;
    // Outside the try: storage that fails is an error, not "no key" (which would make a new one over it).
    const wrap = await this.wrappingKey();
    try {
      return new Uint8Array(
        await this.deps.subtle.decrypt(
          { name: "AES-GCM", iv: sealed.iv as Uint8Array<ArrayBuffer> },
          wrap,
          sealed.data,
        ),
      );
    } catch {
      return null; // damaged, or sealed under a wrapping key this browser no longer has
    }
  }

  async storeSealed(slot: string, secret: Uint8Array): Promise<void> {
    const iv = this.deps.random(12);
    const data = await this.deps.subtle.encrypt(
      { name: "AES-GCM", iv: iv as Uint8Array<ArrayBuffer> },
      await this.wrappingKey(),
      secret as Uint8Array<ArrayBuffer>,
    );
    await this.put(slot, { iv, data });
  }

  /** A value that needs no sealing (public keys, pinned host keys), or undefined. */
  getItem(slot: string): Promise<unknown> {
    return this.get(slot);
  }

  setItem(slot: string, value: unknown): Promise<void> {
    return this.put(slot, value);
  }

  async deleteItem(slot: string): Promise<void> {
    const tx = (await this.db()).transaction(STORE, "readwrite");
    await Promise.all([req(tx.objectStore(STORE).delete(slot)), committed(tx)]);
  }

  /** This user's key, made (from `fresh()`) and kept if there is none. */
  async loadOrCreate(user: string, fresh: () => Uint8Array): Promise<{ key: Uint8Array; created: boolean }> {
    const existing = await this.load(user);
    if (existing) return { key: existing, created: false };
    const key = fresh();
    await this.store(user, key);
    return { key, created: true };
  }

  /** Whether this user's node should join by itself when a Trellis page opens (it did, and was not disconnected). */
  async wantsRunning(user: string): Promise<boolean> {
    return (await this.get(`want-running:${user}`)) === true;
  }

  async setWantsRunning(user: string, want: boolean): Promise<void> {
    await this.put(`want-running:${user}`, want);
  }

  /** Forget this user's key and preference (after leaving the tailnet). */
  async forget(user: string): Promise<void> {
    const tx = (await this.db()).transaction(STORE, "readwrite");
    const store = tx.objectStore(STORE);
    store.delete(`want-running:${user}`);
    await Promise.all([req(store.delete(this.slot(user))), committed(tx)]);
  }
}
