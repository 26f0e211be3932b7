import { x25519 } from "@noble/curves/ed25519.js";
import { describe, expect, it } from "vitest";
import {
  CreateWireGuardPeerRequest,
  generateWireGuardKeyPair,
  parseWgQuick,
  usableX25519Public,
  WireGuardConfigQuery,
  wgKeyBytes,
  wgKeyText,
  wgQuickConfig,
  type WgQuickInput,
} from "./wireguard";

const priv = x25519.utils.randomSecretKey();
const pub = wgKeyText(x25519.getPublicKey(priv));
const gw = wgKeyText(x25519.getPublicKey(x25519.utils.randomSecretKey()));

const input: WgQuickInput = {
  name: "laptop-wg",
  addresses: ["100.64.0.9/32", "fd7a:115c:a1e0::9/128"],
  gatewayName: "office-gw",
  gatewayPublicKey: gw,
  endpoint: "203.0.113.7:41641",
  allowedIPs: ["100.64.0.0/10", "fd7a:115c:a1e0::/48", "192.168.1.0/24"],
  persistentKeepalive: 25,
  publicKey: pub,
};

describe("WireGuard key text", () => {
  it("round-trips wg(8)'s base64", () => {
    const bytes = x25519.getPublicKey(priv);
    expect(wgKeyBytes(wgKeyText(bytes))).toEqual(bytes);
    expect(wgKeyText(bytes)).toHaveLength(44);
  });

  it("refuses what is not 32 bytes of canonical base64", () => {
    for (const bad of [
      "",
      "abc",
      pub.slice(0, 43),
      pub + "=",
      pub.replace(/=$/, "A"),
      "nodekey:" + "0".repeat(64),
    ]) {
      expect(() => wgKeyBytes(bad), bad).toThrow(/44 characters of base64/);
    }
    // Same bytes, non-canonical last character (unused low bits set).
    expect(wgKeyBytes("A".repeat(43) + "=")).toEqual(new Uint8Array(32));
    expect(() => wgKeyBytes("A".repeat(42) + "B=")).toThrow();
  });

  it("refuses points of small order", () => {
    expect(usableX25519Public(new Uint8Array(32))).toBe(false);
    const one = new Uint8Array(32);
    one[0] = 1;
    expect(usableX25519Public(one)).toBe(false);
    expect(usableX25519Public(wgKeyBytes(pub))).toBe(true);
  });
});

describe("generateWireGuardKeyPair", () => {
  it("makes a pair wg(8) would: the public key is the private key's", () => {
    const pair = generateWireGuardKeyPair();
    expect(wgKeyText(x25519.getPublicKey(wgKeyBytes(pair.privateKey)))).toBe(pair.publicKey);
    expect(generateWireGuardKeyPair().privateKey).not.toBe(pair.privateKey);
  });
});

describe("CreateWireGuardPeerRequest", () => {
  it("accepts a name, a gateway and a public key", () => {
    const r = CreateWireGuardPeerRequest.safeParse({ name: "laptop-wg", gatewayId: "g1", publicKey: pub });
    expect(r.success).toBe(true);
  });

  it("names the field of a bad key, and refuses unknown fields (a private key above all)", () => {
    const bad = CreateWireGuardPeerRequest.safeParse({
      name: "laptop-wg",
      gatewayId: "g1",
      publicKey: wgKeyText(new Uint8Array(32)),
    });
    expect(bad.success).toBe(false);
    expect(bad.error!.issues[0]!.path).toEqual(["publicKey"]);
    expect(bad.error!.issues[0]!.message).toMatch(/small order/);
    const extra = CreateWireGuardPeerRequest.safeParse({
      name: "laptop-wg",
      gatewayId: "g1",
      publicKey: pub,
      privateKey: wgKeyText(priv),
    });
    expect(extra.success).toBe(false);
  });
});

describe("WireGuardConfigQuery", () => {
  it("takes host:port endpoints only", () => {
    expect(WireGuardConfigQuery.safeParse({ endpoint: "vpn.example.com:41641" }).success).toBe(true);
    expect(WireGuardConfigQuery.safeParse({ endpoint: "[2001:db8::1]:51820" }).success).toBe(true);
    for (const bad of ["vpn.example.com", "1.2.3.4:0", "1.2.3.4:70000", "a b:1", "x:1\nPostUp = rm -rf /"]) {
      expect(WireGuardConfigQuery.safeParse({ endpoint: bad }).success, bad).toBe(false);
    }
  });
});

describe("wgQuickConfig", () => {
  it("writes a file wg-quick reads, with a comment where the private key goes", () => {
    const text = wgQuickConfig(input);
    expect(text).toBe(
      [
        "# Trellis: laptop-wg, a plain WireGuard peer through the gateway office-gw",
        "[Interface]",
        `# PrivateKey = <the private key of ${pub}; Trellis never had it>`,
        "Address = 100.64.0.9/32, fd7a:115c:a1e0::9/128",
        "",
        "[Peer]",
        "# office-gw",
        `PublicKey = ${gw}`,
        "Endpoint = 203.0.113.7:41641",
        "AllowedIPs = 100.64.0.0/10, fd7a:115c:a1e0::/48, 192.168.1.0/24",
        "PersistentKeepalive = 25",
        "",
      ].join("\n"),
    );
    const parsed = parseWgQuick(text);
    expect(parsed).toEqual({
      privateKey: null,
      addresses: input.addresses,
      peers: [
        { publicKey: gw, endpoint: input.endpoint, allowedIPs: input.allowedIPs, persistentKeepalive: 25 },
      ],
    });
  });

  it("fills in the private key when the caller has it", () => {
    const key = wgKeyText(priv);
    expect(parseWgQuick(wgQuickConfig({ ...input, privateKey: key })).privateKey).toBe(key);
    expect(() => wgQuickConfig({ ...input, privateKey: "not a key" })).toThrow();
  });

  it("keeps names on their comment line", () => {
    const text = wgQuickConfig({ ...input, gatewayName: "gw\nPostUp = evil" });
    expect(text).not.toMatch(/^PostUp/m);
  });

  it("says when the gateway published no endpoint", () => {
    const parsed = parseWgQuick(wgQuickConfig({ ...input, endpoint: null }));
    expect(parsed.peers[0]!.endpoint).toBeNull();
  });
});

describe("parseWgQuick", () => {
  it("refuses lines outside a section or without a value", () => {
    expect(() => parseWgQuick("PrivateKey = x")).toThrow(/line 1/);
    expect(() => parseWgQuick("[Interface]\nnonsense")).toThrow(/line 2/);
  });
});
