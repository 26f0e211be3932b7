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
    expect(header.nonce).toMatch(/^[0-9a-f]{32}$/);
    expect(header.mac).toBe(
      serverMac(
        server.privateKey,
        node.publicKey,
        `POST\n/api/v1/endpoints\n1800000000\n${header.nonce}\n${bodyHash}`,
      ),
    );
  });
});

describe("ControlSigner repeats", () => {
  it("signs identical requests in the same second distinctly, from one signer or two of one key", () => {
    const priv = generateKeyPair().privateKey;
    const control = encodeKey("controlkey", generateKeyPair().publicKey);
    const one = new ControlSigner(priv, control);
    const two = new ControlSigner(priv, control);
    const t = 1_800_000_000_000;
    const headers = [
      one.sign("GET", "/api/v1/map", "", t),
      one.sign("GET", "/api/v1/map", "", t),
      two.sign("GET", "/api/v1/map", "", t),
    ].map((h) => parseNodeAuth(h)!);
    expect(headers.map((h) => h.ts)).toEqual([1_800_000_000, 1_800_000_000, 1_800_000_000]);
    expect(new Set(headers.map((h) => h.mac)).size).toBe(3);
  });
});
