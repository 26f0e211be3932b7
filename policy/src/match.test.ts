import { describe, expect, it } from "vitest";
import { addrBytes, parseAddr } from "@trellis/proto/ip";
import type { FilterRule } from "./compile";
import { AddrRanges, CompiledFilter, FilterSyntaxError } from "./match";

const b = (text: string) => addrBytes(parseAddr(text)!);
const TCP = 6;
const UDP = 17;
const ICMP = 1;

const rules: FilterRule[] = [
  {
    SrcIPs: ["100.64.0.1", "100.64.0.10-100.64.0.20", "fd7a:115c:a1e0::/64"],
    DstPorts: [
      { IP: "100.64.0.2", Ports: { First: 22, Last: 22 } },
      { IP: "10.0.0.0/8", Ports: { First: 8000, Last: 8999 } },
    ],
  },
  {
    SrcIPs: ["*"],
    DstPorts: [{ IP: "fd7a:115c:a1e0::2", Ports: { First: 443, Last: 443 } }],
    IPProto: [UDP],
  },
  { SrcIPs: ["*"], CapGrant: [{ Dsts: ["100.64.0.2/32"], CapMap: { "example.com/cap/x": [] } }] },
];

describe("CompiledFilter", () => {
  const f = CompiledFilter.compile(rules);

  it("matches sources by address, range and prefix, and destinations by address and port", () => {
    expect(f.match(b("100.64.0.1"), b("100.64.0.2"), TCP, 22)).toBe(0);
    expect(f.match(b("100.64.0.15"), b("10.1.2.3"), UDP, 8080)).toBe(0);
    expect(f.match(b("fd7a:115c:a1e0::99"), b("100.64.0.2"), TCP, 22)).toBe(0);
    expect(f.match(b("100.64.0.9"), b("100.64.0.2"), TCP, 22)).toBe(-1);
    expect(f.match(b("100.64.0.21"), b("100.64.0.2"), TCP, 22)).toBe(-1);
    expect(f.match(b("100.64.0.1"), b("100.64.0.2"), TCP, 23)).toBe(-1);
    expect(f.match(b("fd7a:115c:a1e0:1::1"), b("100.64.0.2"), TCP, 22)).toBe(-1);
  });

  it("applies the default protocols and IPProto, ignoring ports for protocols that have none", () => {
    // Default protocols: TCP, UDP, ICMP; ICMP has no port to check.
    expect(f.match(b("100.64.0.1"), b("100.64.0.2"), ICMP, 0)).toBe(0);
    expect(f.match(b("100.64.0.1"), b("100.64.0.2"), 132 /* SCTP */, 22)).toBe(-1);
    expect(f.match(b("192.0.2.1"), b("fd7a:115c:a1e0::2"), UDP, 443)).toBe(1);
    expect(f.match(b("192.0.2.1"), b("fd7a:115c:a1e0::2"), TCP, 443)).toBe(-1);
  });

  it("accepts no packet through a capability grant alone", () => {
    expect(CompiledFilter.compile([rules[2]!]).match(b("100.64.0.1"), b("100.64.0.2"), TCP, 1)).toBe(-1);
  });

  it("refuses a filter address that is none", () => {
    expect(() => CompiledFilter.compile([{ SrcIPs: ["10.0.0.300"], DstPorts: [] }])).toThrow(
      FilterSyntaxError,
    );
    expect(() => AddrRanges.of(["100.64.0.9-100.64.0.1"])).toThrow(FilterSyntaxError);
  });
});

describe("AddrRanges", () => {
  it("merges overlapping and adjacent ranges and finds edges exactly", () => {
    const set = AddrRanges.of(["10.0.0.0/24", "10.0.1.0/24", "10.0.0.128/25", "::/1", "8000::-8000::5"]);
    for (const [a, want] of [
      ["9.255.255.255", false],
      ["10.0.0.0", true],
      ["10.0.1.255", true],
      ["10.0.2.0", false],
      ["::", true],
      ["7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true],
      ["8000::5", true],
      ["8000::6", false],
    ] as const) {
      expect(set.has(b(a)), a).toBe(want);
    }
    expect(set.has(new Uint8Array(5))).toBe(false);
  });
});
