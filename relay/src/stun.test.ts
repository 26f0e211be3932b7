import { createSocket } from "node:dgram";
import { afterEach, describe, expect, it } from "vitest";
import { crc32 } from "node:zlib";
import { bindingRequest, parseBindingResponse, parseStunHeader } from "@trellis/proto/stun";
import { StunServer, bindingResponse } from "./stun";

const servers: StunServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/**
 * Send each message in turn from one socket; resolve with the first reply
 * (null if none comes in 10 s). Junk followed by a valid request proves the
 * junk went unanswered without waiting on a timeout: the first reply must be
 * the valid request's.
 */
async function ask(port: number, host: string, ...msgs: Uint8Array[]): Promise<Buffer | null> {
  const sock = createSocket(host.includes(":") ? "udp6" : "udp4");
  await new Promise<void>((r) => sock.bind(0, host, r));
  try {
    return await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), 10_000);
      sock.once("message", (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      for (const msg of msgs) sock.send(msg, port, host);
    });
  } finally {
    sock.close();
  }
}

describe("STUN server", () => {
  it("encodes a response that decodes back, with a valid FINGERPRINT", () => {
    const txid = new Uint8Array(12).map((_, i) => i + 1);
    for (const [addr, port, back] of [
      ["192.0.2.1", 32853, "192.0.2.1"],
      ["::ffff:10.77.0.2", 4000, "10.77.0.2"],
      ["2001:db8:1234:5678:11:2233:4455:6677", 32853, "2001:db8:1234:5678:11:2233:4455:6677"],
    ] as const) {
      const res = bindingResponse(txid, addr, port);
      expect(parseBindingResponse(res)).toEqual({ address: back, port });
      const dv = new DataView(res.buffer);
      const fpAt = res.length - 8;
      expect(dv.getUint16(fpAt)).toBe(0x8028);
      expect(dv.getUint32(fpAt + 4)).toBe((crc32(res.subarray(0, fpAt)) ^ 0x5354554e) >>> 0);
      expect(parseStunHeader(res)!.transactionId).toEqual(txid);
    }
  });

  it("answers a Binding request over UDP with the sender's address, and ignores junk", async () => {
    const server = new StunServer();
    servers.push(server);
    const port = await server.listen(0, "127.0.0.1");
    const txid = new Uint8Array(12).fill(7);
    const res = await ask(port, "127.0.0.1", bindingRequest(txid));
    expect(res).not.toBeNull();
    const mapped = parseBindingResponse(res!);
    expect(mapped?.address).toBe("127.0.0.1");
    expect(mapped?.port).toBeGreaterThan(0);
    const next = new Uint8Array(12).fill(8);
    const after = await ask(
      port,
      "127.0.0.1",
      new TextEncoder().encode("not stun at all, just noise"),
      bindingRequest(next),
    );
    expect(after?.subarray(8, 20)).toEqual(Buffer.from(next));
    expect(server.stats).toMatchObject({ requests: 2, responses: 2, ignored: 1 });
  });

  it("answers over IPv6", async () => {
    const server = new StunServer();
    servers.push(server);
    const port = await server.listen(0, "::1");
    const res = await ask(port, "::1", bindingRequest(new Uint8Array(12).fill(9)));
    expect(parseBindingResponse(res!)?.address).toBe("::1");
  });
});
