/**
 * Text form of 32-byte public keys on the wire, as Tailscale writes them:
 * a type prefix and lowercase hex (`nodekey:…`, `relaykey:…`, `controlkey:…`).
 */
export type KeyPrefix = "nodekey" | "relaykey" | "controlkey" | "privkey";

export class KeyFormatError extends Error {
  override readonly name = "KeyFormatError";
}

export function encodeKey(prefix: KeyPrefix, key: Uint8Array): string {
  if (key.length !== 32) throw new KeyFormatError(`${prefix} must be 32 bytes, got ${key.length}`);
  let hex = "";
  for (const b of key) hex += b.toString(16).padStart(2, "0");
  return `${prefix}:${hex}`;
}

export function decodeKey(prefix: KeyPrefix, text: string): Uint8Array {
  const m = /^([a-z]+):([0-9a-f]{64})$/.exec(text);
  if (!m || m[1] !== prefix) {
    throw new KeyFormatError(`expected "${prefix}:" followed by 64 lowercase hex digits`);
  }
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(m[2]!.slice(i * 2, i * 2 + 2), 16);
  return out;
}
