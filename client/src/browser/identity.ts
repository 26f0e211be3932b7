// A browser tab's node identity: its WireGuard static key, generated in the
// page and kept in the origin's storage (localStorage), so a reload is the
// same node. The private key never leaves the page: only the public key and
// request signatures are sent. Browser-safe (@noble, no Node APIs).
import { x25519 } from "@noble/curves/ed25519.js";
import { decodeKey, encodeKey } from "@trellis/proto";
import { ControlSigner } from "../control/signer";

/** The slice of the Web Storage API this needs (localStorage, or a Map-backed stand-in in tests). */
export interface KeyStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** Where the key is kept, as `privkey:<hex>`, the form key files use. */
export const BROWSER_KEY_ITEM = "trellis.node.privkey";

export class BrowserIdentity {
  private constructor(
    private readonly privateKey: Uint8Array,
    private readonly storage: KeyStorage,
  ) {}

  /** The stored identity, or null when this browser has none (or a damaged one, which is discarded). */
  static load(storage: KeyStorage): BrowserIdentity | null {
    const text = storage.getItem(BROWSER_KEY_ITEM);
    if (text === null) return null;
    try {
      return new BrowserIdentity(decodeKey("privkey", text), storage);
    } catch {
      storage.removeItem(BROWSER_KEY_ITEM);
      return null;
    }
  }

  /** The stored identity, or a new one stored now. */
  static loadOrCreate(storage: KeyStorage): BrowserIdentity {
    const existing = BrowserIdentity.load(storage);
    if (existing) return existing;
    const privateKey = x25519.utils.randomSecretKey();
    storage.setItem(BROWSER_KEY_ITEM, encodeKey("privkey", privateKey));
    return new BrowserIdentity(privateKey, storage);
  }

  /** The public key in wire form, `nodekey:<64 hex>`. */
  get publicKey(): string {
    return encodeKey("nodekey", x25519.getPublicKey(this.privateKey));
  }

  /** A signer of control requests for the server whose key is `controlKey`. */
  signer(controlKey: string): ControlSigner {
    return new ControlSigner(this.privateKey, controlKey);
  }

  /** Forget the key (after logging the node out): the next connect is a new node. */
  forget(): void {
    this.storage.removeItem(BROWSER_KEY_ITEM);
    this.privateKey.fill(0);
  }
}
