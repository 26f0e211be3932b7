import { describe, expect, it } from "vitest";
import { bindingRequest, parseBindingResponse, parseStunHeader, BINDING_REQUEST } from "./stun";

// RFC 5769 §2.2, "Sample IPv4 Response": transaction id b7e7a701bc34d686fa87dfae,
// XOR-MAPPED-ADDRESS 192.0.2.1:32853. The attribute walk and XOR decoding are
// what is checked; MESSAGE-INTEGRITY is not verified here, so its 20 bytes are zero.
const RFC5769_RESPONSE = Buffer.from(
  "0101003c2112a442b7e7a701bc34d686fa87dfae" +
    "8022000b" +
    "7465737420766563746f7220" +
    "00200008" +
    "0001a147e112a643" +
    "00080014" +
    "0000000000000000000000000000000000000000" +
    "80280004" +
    "c07d4c96",
  "hex",
);

describe("STUN codec", () => {
  it("decodes XOR-MAPPED-ADDRESS from RFC 5769's sample response", () => {
    expect(parseBindingResponse(RFC5769_RESPONSE)).toEqual({ address: "192.0.2.1", port: 32853 });
  });

  it.each([
    ["too short", new Uint8Array(10)],
    ["bad cookie", Buffer.from("000100002112a443" + "00".repeat(12), "hex")],
    ["length mismatch", Buffer.from("000100042112a442" + "00".repeat(12), "hex")],
    ["top bits set", Buffer.from("c00100002112a442" + "00".repeat(12), "hex")],
  ])("rejects a %s message", (_, msg) => {
    expect(parseStunHeader(msg)).toBeNull();
  });

  it("builds a Binding request that parses as one, and refuses a wrong transaction id", () => {
    const txid = new Uint8Array(12).fill(3);
    const h = parseStunHeader(bindingRequest(txid));
    expect(h).toEqual({ type: BINDING_REQUEST, length: 0, transactionId: txid });
    expect(() => bindingRequest(new Uint8Array(11))).toThrow(RangeError);
  });
});
