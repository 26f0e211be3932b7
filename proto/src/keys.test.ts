import { describe, expect, it } from "vitest";
import { KeyFormatError, decodeKey, encodeKey } from "./keys";

describe("key text form", () => {
  it("round-trips", () => {
    const key = new Uint8Array(32).map((_, i) => 255 - i);
    const text = encodeKey("nodekey", key);
    expect(text).toBe("nodekey:" + Buffer.from(key).toString("hex"));
    expect(decodeKey("nodekey", text)).toEqual(key);
  });

  it.each([
    ["relaykey:" + "00".repeat(32), /expected "nodekey:"/],
    ["nodekey:" + "00".repeat(31), /64 lowercase hex/],
    ["nodekey:" + "AA".repeat(32), /64 lowercase hex/],
    ["00".repeat(32), /expected/],
  ])("rejects %s", (text, message) => {
    expect(() => decodeKey("nodekey", text)).toThrow(KeyFormatError);
    expect(() => decodeKey("nodekey", text)).toThrow(message);
  });

  it("refuses keys of the wrong length", () => {
    expect(() => encodeKey("nodekey", new Uint8Array(31))).toThrow(KeyFormatError);
  });
});
