import { createHash, createHmac, diffieHellman, createPrivateKey, createPublicKey } from "node:crypto";
import { describe, expect, it } from "vitest";
import { encodeKey, parseNodeAuth } from "@trellis/proto";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { ControlSigner } from "./signer";

// The server side of the scheme computed with node:crypto, independently of @noble.
function serverMac(serverPriv: Uint8Array, nodePub: Uint8Array, message: string): string {
  const priv = createPrivateKey({
    key: Buffer.concat([Buffer.from("302e020100300506032b656e04220420", "hex"), serverPriv]),
    format: "der",
    type: "pkcs8",
  });
  const pub = createPublicKey({
    key: Buffer.concat([Buffer.from("302a300506032b656e032100", "hex"), nodePub]),
    format: "der",
    type: "spki",
  });
  const key = createHash("sha256")
    .update(diffieHellman({ privateKey: priv, publicKey: pub }))
    .digest();
  return createHmac("sha256", key).update(message).digest("hex");
}

describe("ControlSigner", () => {
  it("produces the MAC the control server computes from its own key", () => {
    const server = generateKeyPair();
    const node = generateKeyPair();
    const signer = new ControlSigner(node.privateKey, encodeKey("controlkey", server.publicKey));
    expect(signer.nodeKey).toBe(encodeKey("nodekey", node.publicKey));
    const body = '{"endpoints":["192.0.2.1:41641"]}';
    const header = parseNodeAuth(signer.sign("post", "/api/v1/endpoints", body, 1_800_000_000_999))!;
    expect(header.ts).toBe(1_800_000_000);
    const bodyHash = createHash("sha256").update(body).digest("hex");
    expect(header.mac).toBe(
      serverMac(server.privateKey, node.publicKey, `POST\n/api/v1/endpoints\n1800000000\n${bodyHash}`),
    );
  });
});

describe("ControlSigner repeats", () => {
  it("signs identical requests in the same second with distinct timestamps", () => {
    const signer = new ControlSigner(
      generateKeyPair().privateKey,
      encodeKey("controlkey", generateKeyPair().publicKey),
    );
    const t = 1_800_000_000_000;
    const a = parseNodeAuth(signer.sign("GET", "/api/v1/map", "", t))!;
    const b = parseNodeAuth(signer.sign("GET", "/api/v1/map", "", t + 10))!;
    const c = parseNodeAuth(signer.sign("GET", "/api/v1/key", "", t))!;
    expect([a.ts, b.ts, c.ts]).toEqual([1_800_000_000, 1_800_000_001, 1_800_000_000]);
    expect(a.mac).not.toBe(b.mac);
  });
});
