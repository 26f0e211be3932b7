import { describe, expect, it } from "vitest";
import { x25519 } from "@noble/curves/ed25519.js";
import { encodeKey, parseNodeAuth } from "@trellis/proto";
import { BROWSER_KEY_ITEM, BrowserIdentity, type KeyStorage } from "./identity";

function memoryStorage(): KeyStorage & { items: Map<string, string> } {
  const items = new Map<string, string>();
  return {
    items,
    getItem: (k) => items.get(k) ?? null,
    setItem: (k, v) => void items.set(k, v),
    removeItem: (k) => void items.delete(k),
  };
}

describe("BrowserIdentity", () => {
  it("creates a key once and is the same node after a reload", () => {
    const storage = memoryStorage();
    expect(BrowserIdentity.load(storage)).toBeNull();
    const first = BrowserIdentity.loadOrCreate(storage);
    expect(first.publicKey).toMatch(/^nodekey:[0-9a-f]{64}$/);
    expect(storage.items.get(BROWSER_KEY_ITEM)).toMatch(/^privkey:[0-9a-f]{64}$/);
    expect(BrowserIdentity.loadOrCreate(storage).publicKey).toBe(first.publicKey);
  });

  it("signs control requests as its node key", () => {
    const storage = memoryStorage();
    const id = BrowserIdentity.loadOrCreate(storage);
    const control = x25519.utils.randomSecretKey();
    const header = id
      .signer(encodeKey("controlkey", x25519.getPublicKey(control)))
      .sign("GET", "/api/v1/map");
    expect(parseNodeAuth(header)?.key).toBe(id.publicKey);
  });

  it("discards a damaged stored key and forgets on request", () => {
    const storage = memoryStorage();
    storage.setItem(BROWSER_KEY_ITEM, "privkey:zz");
    expect(BrowserIdentity.load(storage)).toBeNull();
    expect(storage.items.has(BROWSER_KEY_ITEM)).toBe(false);
    const id = BrowserIdentity.loadOrCreate(storage);
    const key = id.publicKey;
    id.forget();
    expect(storage.items.has(BROWSER_KEY_ITEM)).toBe(false);
    expect(BrowserIdentity.loadOrCreate(storage).publicKey).not.toBe(key);
  });
});
