// SSH keys held by the browser, per Trellis user: made here (ECDSA P-256 or
// RSA) or imported from a PEM file, kept sealed under the browser's
// wrapping key (the same store as the node key, client/src/browser/keystore.ts),
// shown as the public line to paste into `authorized_keys`. And the host
// keys a user has accepted, pinned per machine (trust on first use): a
// changed key stops the connection. Browser-safe; the store is injected.
import { SshAlgorithms, type KeyPair } from "@microsoft/dev-tunnels-ssh";
import {
  exportPrivateKey,
  exportPublicKey,
  importKey,
  type KeyFormat,
} from "@microsoft/dev-tunnels-ssh-keys";
import type { HostKey } from "./ssh";

/** What the keyring and known hosts need of storage (KeyStore provides it). */
export interface SecretStore {
  loadSealed(slot: string): Promise<Uint8Array | null>;
  storeSealed(slot: string, secret: Uint8Array): Promise<void>;
  getItem(slot: string): Promise<unknown>;
  setItem(slot: string, value: unknown): Promise<void>;
  deleteItem(slot: string): Promise<void>;
}

// The library's KeyFormat is a const enum (not importable under isolatedModules).
const FORMAT_SSH = 1 as KeyFormat;
const FORMAT_PKCS8 = 5 as KeyFormat;

export type SshKeyKind = "ecdsa-p256" | "rsa-3072";

export class SshKeyError extends Error {
  override readonly name = "SshKeyError";
  constructor(
    message: string,
    readonly code: "bad_key" | "encrypted" | "not_found" | "too_many",
  ) {
    super(message);
  }
}

/** A key as the keyring lists it (no private part). */
export interface SshKeyInfo {
  id: string;
  /** `ecdsa-sha2-nistp256 AAAA… comment`, for authorized_keys. */
  publicKey: string;
  algorithm: string;
  comment: string;
  created: string;
}

const MAX_KEYS = 16;
/** PEM text larger than this is not a key (4096-bit RSA PKCS#8 is ~3.3 KB). */
const MAX_PEM = 16 * 1024;

export async function generateSshKey(kind: SshKeyKind): Promise<KeyPair> {
  const alg =
    kind === "ecdsa-p256" ? SshAlgorithms.publicKey.ecdsaSha2Nistp256 : SshAlgorithms.publicKey.rsaWithSha512;
  return alg!.generateKeyPair(kind === "rsa-3072" ? 3072 : undefined);
}

/** The one-line public key for authorized_keys. */
export async function publicKeyLine(key: KeyPair, comment: string): Promise<string> {
  const line = (await exportPublicKey(key, FORMAT_SSH)).trim().split(/\s+/).slice(0, 2).join(" ");
  return comment ? `${line} ${comment}` : line;
}

/** A private key from PEM text (PKCS#8, PKCS#1, SEC1 or OpenSSH). */
export async function importPrivateKey(pem: string, passphrase?: string): Promise<KeyPair> {
  if (pem.length > MAX_PEM) throw new SshKeyError("that is too large to be a private key", "bad_key");
  if (!/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(pem))
    throw new SshKeyError("paste a private key in PEM form (-----BEGIN … PRIVATE KEY-----)", "bad_key");
  let key: KeyPair;
  try {
    key = await importKey(pem.trim(), passphrase ?? null);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    if (/passphrase|encrypt/i.test(message) && !passphrase)
      throw new SshKeyError("this key is protected by a passphrase: enter it", "encrypted");
    throw new SshKeyError(`this key cannot be read (${message})`, "bad_key");
  }
  if (!key.hasPrivateKey) throw new SshKeyError("that is a public key; paste the private key", "bad_key");
  return key;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One Trellis user's SSH keys in this browser. */
export class SshKeyring {
  constructor(
    private readonly store: SecretStore,
    private readonly user: string,
  ) {}

  private get indexSlot(): string {
    return `ssh-keys:${this.user}`;
  }

  async list(): Promise<SshKeyInfo[]> {
    const v = await this.store.getItem(this.indexSlot);
    return Array.isArray(v) ? (v as SshKeyInfo[]) : [];
  }

  /** Keep `key` (generated or imported) and return how it is listed. */
  async add(key: KeyPair, comment: string): Promise<SshKeyInfo> {
    const keys = await this.list();
    if (keys.length >= MAX_KEYS)
      throw new SshKeyError(`at most ${MAX_KEYS} keys per user; remove one first`, "too_many");
    const info: SshKeyInfo = {
      id: crypto.randomUUID(),
      publicKey: await publicKeyLine(key, comment),
      algorithm: key.keyAlgorithmName,
      comment,
      created: new Date().toISOString(),
    };
    const pem = await exportPrivateKey(key, null, FORMAT_PKCS8);
    await this.store.storeSealed(`ssh-key:${this.user}:${info.id}`, encoder.encode(pem));
    await this.store.setItem(this.indexSlot, [...keys, info]);
    return info;
  }

  /** The key pair, private part included, for signing in. */
  async load(id: string): Promise<KeyPair> {
    const sealed = await this.store.loadSealed(`ssh-key:${this.user}:${id}`);
    if (!sealed) throw new SshKeyError("this browser no longer has that key", "not_found");
    return importKey(decoder.decode(sealed));
  }

  async remove(id: string): Promise<void> {
    const keys = await this.list();
    await this.store.setItem(
      this.indexSlot,
      keys.filter((k) => k.id !== id),
    );
    await this.store.deleteItem(`ssh-key:${this.user}:${id}`);
  }
}

export type HostKeyCheck =
  { state: "unknown" } | { state: "match" } | { state: "changed"; pinned: HostKey & { since: string } };

/** Host keys one user has accepted, by machine (trust on first use). */
export class KnownHosts {
  constructor(
    private readonly store: SecretStore,
    private readonly user: string,
  ) {}

  private slot(machine: string): string {
    return `known-host:${this.user}:${machine.toLowerCase()}`;
  }

  async check(machine: string, key: HostKey): Promise<HostKeyCheck> {
    const pinned = (await this.store.getItem(this.slot(machine))) as
      (HostKey & { since: string }) | undefined;
    if (!pinned) return { state: "unknown" };
    return pinned.key === key.key ? { state: "match" } : { state: "changed", pinned };
  }

  async trust(machine: string, key: HostKey): Promise<void> {
    await this.store.setItem(this.slot(machine), { ...key, since: new Date().toISOString() });
  }

  async forget(machine: string): Promise<void> {
    await this.store.deleteItem(this.slot(machine));
  }
}
