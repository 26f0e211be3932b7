import { createHash, createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ControlSigner } from "@trellis/client";
import { encodeKey, formatNodeAuth, nodeAuthMessage, parseNodeAuth } from "@trellis/proto";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { x25519 } from "@noble/curves/ed25519.js";
import { ControlError } from "./errors";
import { NodeAuthenticator, type SignedRequest } from "./node-auth";

const server = generateKeyPair();
const node = generateKeyPair();
const T0 = 1_800_000_000_000;

function setup(now = () => T0) {
  const auth = new NodeAuthenticator(server, { now });
  const signer = new ControlSigner(node.privateKey, auth.publicKey);
  return { auth, signer };
}

function req(signer: ControlSigner, over: Partial<SignedRequest> = {}, at = T0): SignedRequest {
  const base = { method: "POST", path: "/api/v1/endpoints", body: '{"endpoints":[]}' };
  const merged = { ...base, ...over };
  return {
    ...merged,
    authorization:
      "authorization" in over
        ? (over.authorization ?? null)
        : signer.sign(base.method, base.path, base.body, at),
  };
}

function rejects(fn: () => unknown, code: string) {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(ControlError.is(err)).toBe(true);
  expect(err).toMatchObject({ status: 401, code });
}

describe("proof of possession of the node key", () => {
  it("accepts a request signed by the node and names its key", () => {
    const { auth, signer } = setup();
    expect(auth.verify(req(signer))).toBe(encodeKey("nodekey", node.publicKey));
  });

  it("matches an independent computation of the scheme (node:crypto on the node side)", () => {
    const { auth } = setup();
    const shared = x25519.getSharedSecret(node.privateKey, server.publicKey);
    const key = createHash("sha256").update(shared).digest();
    const ts = T0 / 1000;
    const body = "hello";
    const nonce = "5a".repeat(16);
    const msg = nodeAuthMessage(
      "GET",
      "/api/v1/map",
      ts,
      nonce,
      createHash("sha256").update(body).digest("hex"),
    );
    const mac = createHmac("sha256", key).update(msg).digest("hex");
    const authorization = formatNodeAuth({ key: encodeKey("nodekey", node.publicKey), ts, nonce, mac });
    expect(auth.verify({ method: "GET", path: "/api/v1/map", body, authorization })).toMatch(/^nodekey:/);
  });

  it("refuses a missing or foreign header", () => {
    const { auth, signer } = setup();
    rejects(() => auth.verify(req(signer, { authorization: null })), "unauthorized");
    rejects(() => auth.verify(req(signer, { authorization: "Bearer abc" })), "unauthorized");
  });

  it("refuses another node's key presented without its private key", () => {
    const { auth } = setup();
    const attacker = new ControlSigner(generateKeyPair().privateKey, auth.publicKey);
    const forged = parseNodeAuth(attacker.sign("POST", "/api/v1/endpoints", '{"endpoints":[]}', T0))!;
    const authorization = formatNodeAuth({ ...forged, key: encodeKey("nodekey", node.publicKey) });
    rejects(() => auth.verify(req(attacker, { authorization })), "bad_signature");
  });

  it.each([
    ["method", { method: "PUT" }],
    ["path", { path: "/api/v1/register" }],
    ["body", { body: '{"endpoints":["1.2.3.4:5"]}' }],
  ])("binds the %s", (_what, over) => {
    const { auth, signer } = setup();
    rejects(() => auth.verify(req(signer, over)), "bad_signature");
  });

  it("refuses timestamps more than 60 s away and replays within the window", () => {
    // Started two minutes ago: the whole window lies after the start.
    let now = T0 - 120_000;
    const { auth } = setup(() => now);
    now = T0;
    const fresh = () => new ControlSigner(node.privateKey, auth.publicKey);
    rejects(() => auth.verify(req(fresh(), {}, T0 - 61_000)), "stale_request");
    rejects(() => auth.verify(req(fresh(), {}, T0 + 61_000)), "stale_request");
    const r = req(fresh(), {}, T0 - 59_000);
    auth.verify(r);
    rejects(() => auth.verify(r), "replayed_request");
    now = T0 + 30_000;
    rejects(() => auth.verify(r), "stale_request");
    // A fresh signature of the same request is fine.
    auth.verify(req(fresh(), {}, now));
  });

  it("accepts the identical request signed in the same second by two holders of the key", () => {
    // A browser's page and its worker, or its old and new worker, both sign
    // the same registration: each carries its own nonce, so neither is a replay.
    const { auth, signer } = setup();
    const other = new ControlSigner(node.privateKey, auth.publicKey);
    auth.verify(req(signer));
    auth.verify(req(other));
    auth.verify(req(signer));
  });

  it("refuses a request signed before the server started (a replay across a restart)", () => {
    let now = T0;
    const before = new NodeAuthenticator(server, { now: () => now });
    const signer = new ControlSigner(node.privateKey, before.publicKey);
    const captured = req(signer, {}, T0);
    before.verify(captured);
    // The process restarts 5 s later, well inside the captured request's window.
    now = T0 + 5_000;
    const after = new NodeAuthenticator(server, { now: () => now });
    rejects(() => after.verify(captured), "stale_request");
    after.verify(req(signer, {}, now));
  });

  it("caps the MACs remembered per key, and those of new keys' registrations apart", () => {
    let t = T0;
    const auth = new NodeAuthenticator(server, {
      now: () => t,
      maxReplayEntriesPerKey: 3,
      maxNewKeyEntries: 5,
    });
    const signer = new ControlSigner(node.privateKey, auth.publicKey);
    const busy = (fn: () => unknown) => {
      let err: unknown;
      try {
        fn();
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ status: 503, code: "busy" });
    };
    for (let i = 0; i < 3; i++) auth.verify(req(signer, {}, (t += 1000)));
    busy(() => auth.verify(req(signer, {}, (t += 1000))));
    // Another key is unaffected by the first one's flood.
    const other = new ControlSigner(generateKeyPair().privateKey, auth.publicKey);
    auth.verify(req(other, {}, t));
    // Made-up keys registering: at most maxNewKeyEntries remembered, and a registered node still gets in.
    for (let i = 0; i < 5; i++) {
      const made = new ControlSigner(generateKeyPair().privateKey, auth.publicKey);
      auth.remember(auth.checkSignature(req(made, {}, t)), "new");
    }
    const sixth = new ControlSigner(generateKeyPair().privateKey, auth.publicKey);
    busy(() => auth.remember(auth.checkSignature(req(sixth, {}, t)), "new"));
    auth.verify(req(other, {}, (t += 1000)));
    // Once the window has passed, the first key's entries are gone.
    t += 125_000;
    auth.verify(req(signer, {}, t));
  });

  it("refuses low-order node keys", () => {
    const { auth } = setup();
    const zero = encodeKey("nodekey", new Uint8Array(32));
    const authorization = formatNodeAuth({
      key: zero,
      ts: T0 / 1000,
      nonce: "00".repeat(16),
      mac: "00".repeat(32),
    });
    rejects(() => auth.verify({ method: "GET", path: "/", body: "", authorization }), "bad_node_key");
  });
});
