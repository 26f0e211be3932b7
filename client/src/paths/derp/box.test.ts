import nacl from "tweetnacl";
import { x25519 } from "@noble/curves/ed25519.js";
import { describe, expect, it } from "vitest";
import { boxSharedKey, openBox, sealBox } from "./box";

describe("NaCl box", () => {
  // Known answer from the NaCl distribution's tests (box.c / box2.c, as
  // reproduced in tweetnacl's test vectors): Alice's secret key and Bob's
  // public key give this shared key (crypto_box_beforenm).
  it("derives NaCl's published shared key", () => {
    const aliceSk = Buffer.from("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", "hex");
    const bobPk = Buffer.from("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", "hex");
    expect(Buffer.from(boxSharedKey(aliceSk, bobPk)).toString("hex")).toBe(
      "1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389",
    );
  });

  it("interoperates with tweetnacl both ways", () => {
    const a = nacl.box.keyPair();
    const b = nacl.box.keyPair();
    const msg = new TextEncoder().encode('{"version":2}');
    const ours = sealBox(msg, a.secretKey, b.publicKey);
    expect(nacl.box.open(ours.subarray(24), ours.subarray(0, 24), a.publicKey, b.secretKey)).toEqual(msg);
    const nonce = nacl.randomBytes(24);
    const theirs = nacl.box(msg, nonce, b.publicKey, a.secretKey);
    const framed = new Uint8Array([...nonce, ...theirs]);
    expect(openBox(framed, b.secretKey, a.publicKey)).toEqual(msg);
  });

  it("refuses a box from someone else or tampered", () => {
    const a = x25519.utils.randomSecretKey();
    const b = x25519.utils.randomSecretKey();
    const mallory = x25519.utils.randomSecretKey();
    const sealed = sealBox(new Uint8Array([1, 2, 3]), a, x25519.getPublicKey(b));
    expect(openBox(sealed, b, x25519.getPublicKey(mallory))).toBeNull();
    sealed[30]! ^= 1;
    expect(openBox(sealed, b, x25519.getPublicKey(a))).toBeNull();
    expect(openBox(new Uint8Array(10), b, x25519.getPublicKey(a))).toBeNull();
  });
});
