import { afterEach, describe, expect, it } from "vitest";
import type { UdpSocket } from "../paths/udp";
import { openUdpSocket, reachableAddresses } from "./udp";

const open: UdpSocket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

async function socket(): Promise<{
  s: UdpSocket;
  got: { text: string; from: { address: string; port: number } }[];
}> {
  const s = await openUdpSocket(0);
  open.push(s);
  const got: { text: string; from: { address: string; port: number } }[] = [];
  s.onMessage((data, from) => got.push({ text: Buffer.from(data).toString(), from }));
  return { s, got };
}

async function arrived<T>(list: T[], n: number): Promise<void> {
  for (let i = 0; i < 100 && list.length < n; i++) await new Promise((r) => setTimeout(r, 10));
}

describe("the node's UDP socket", () => {
  it("carries IPv4 and IPv6 on one port, and names IPv4 senders as IPv4", async () => {
    const a = await socket();
    const b = await socket();
    a.s.send(new TextEncoder().encode("over v4"), { address: "127.0.0.1", port: b.s.port });
    a.s.send(new TextEncoder().encode("by name"), { address: "localhost", port: b.s.port });
    a.s.send(new TextEncoder().encode("over v6"), { address: "::1", port: b.s.port });
    await arrived(b.got, 3);
    expect(b.got).toContainEqual({ text: "over v4", from: { address: "127.0.0.1", port: a.s.port } });
    expect(b.got).toContainEqual({ text: "by name", from: { address: "127.0.0.1", port: a.s.port } });
    expect(b.got).toContainEqual({ text: "over v6", from: { address: "::1", port: a.s.port } });
  });

  it("offers only addresses another host could reach", () => {
    const all = reachableAddresses();
    for (const a of all) {
      expect(a).not.toMatch(
        /^(127\.|169\.254\.|::1$|fe[89ab]|100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.|fd7a:115c:a1e0:)/i,
      );
    }
    expect(reachableAddresses(true).every((a) => !a.includes(":"))).toBe(true);
  });
});
