import { join } from "node:path";
import { encodeKey } from "@trellis/proto";
import { loadOrCreateKeyFile, type KeyPair } from "@trellis/proto/keyfile";
import { ControlSigner } from "../control/signer";
import type { NodeKeyHolder } from "../control/client";

/**
 * A node's identity on a machine with a file system (gateways, CLI): its
 * WireGuard static key, kept in `node.key` (0600) under the state directory.
 * Only the public half ever leaves this object's owner.
 */
export class NodeIdentity implements NodeKeyHolder {
  private constructor(
    private readonly keys: KeyPair,
    readonly keyPath: string,
  ) {}

  static loadOrCreate(stateDir: string): NodeIdentity {
    const keyPath = join(stateDir, "node.key");
    return new NodeIdentity(loadOrCreateKeyFile(keyPath), keyPath);
  }

  /** The public key in wire form, `nodekey:<64 hex>`. */
  get publicKey(): string {
    return encodeKey("nodekey", this.keys.publicKey);
  }

  /** A signer of control requests for the server whose key is `controlKey`. */
  signer(controlKey: string): ControlSigner {
    return new ControlSigner(this.keys.privateKey, controlKey);
  }

  /** Raw private key bytes, for handing to the WireGuard core in this process only. */
  privateKeyBytes(): Uint8Array {
    return this.keys.privateKey.slice();
  }
}
