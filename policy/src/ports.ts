// Ports, port ranges and IP protocols as policy files write them
// (`22`, `80,443`, `1000-2000`, `*`; `tcp`, `udp`, `icmp`, `17`…).

/** An inclusive port range, in the shape of Tailscale's `tailcfg.PortRange`. */
export interface PortRange {
  First: number;
  Last: number;
}

/** Every port. */
export const ALL_PORTS: PortRange = { First: 0, Last: 65535 };

/** IANA numbers of the protocols a rule without `proto` allows: TCP, UDP, ICMPv4, ICMPv6. */
export const DEFAULT_PROTOS: readonly number[] = [6, 17, 1, 58];

/** Protocol names Tailscale accepts in `proto` and grant `ip` entries, with their IANA numbers. */
export const PROTOCOLS: Readonly<Record<string, number>> = {
  icmp: 1,
  igmp: 2,
  ipv4: 4,
  "ip-in-ip": 4,
  tcp: 6,
  egp: 8,
  igp: 9,
  udp: 17,
  gre: 47,
  esp: 50,
  ah: 51,
  "ipv6-icmp": 58,
  sctp: 132,
  fc: 133,
};

/** Whether packets of this protocol carry ports (so a rule can name them). */
export function protoHasPorts(proto: number): boolean {
  return proto === 6 || proto === 17 || proto === 132;
}

/** Result of parsing a piece of policy text: the value or a message saying what is wrong. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = (error: string): Parsed<never> => ({ ok: false, error });

function parsePort(s: string): number | null {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(s)) return null;
  const n = Number(s);
  return n <= 65535 ? n : null;
}

/** Parse a port list: `*`, `22`, `80,443`, `1000-2000` or a mix such as `22,8000-8999`. */
export function parsePorts(text: string): Parsed<PortRange[]> {
  if (text === "*") return ok([ALL_PORTS]);
  if (text === "") return fail("missing port (use * for every port)");
  const out: PortRange[] = [];
  for (const part of text.split(",")) {
    const dash = part.indexOf("-");
    const first = parsePort(dash < 0 ? part : part.slice(0, dash));
    const last = dash < 0 ? first : parsePort(part.slice(dash + 1));
    if (first === null || last === null) {
      return fail(`"${part}" is not a port or port range (ports are 1-65535, ranges are like 1000-2000)`);
    }
    if (first === 0) return fail(`"${part}": first port must be >0, or use "*" for wildcard`);
    if (first > last) return fail(`port range "${part}" ends before it starts`);
    out.push({ First: first, Last: last });
  }
  return ok(out);
}

/**
 * Parse a protocol name or IANA number. Returns the protocol numbers it
 * stands for; `null` means the default set (TCP, UDP, ICMP).
 */
export function parseProto(p: string | number | undefined): Parsed<number[] | null> {
  if (p === undefined || p === "") return ok(null);
  const text = String(p).toLowerCase();
  if (text === "*")
    return fail('proto "*" is not allowed: leave proto out for TCP, UDP and ICMP, or name one protocol');
  if (text in PROTOCOLS) return ok([PROTOCOLS[text]!]);
  if (/^[1-9][0-9]{0,2}$/.test(text) && Number(text) <= 255) return ok([Number(text)]);
  return fail(
    `unknown protocol "${p}": use a name (tcp, udp, icmp, sctp, gre, esp, ah, ipv6-icmp, …) or a number 1-255`,
  );
}

/** Check that a protocol can be combined with these ports: only TCP, UDP and SCTP have ports. */
export function checkProtoPorts(protos: number[] | null, ports: PortRange[]): string | null {
  if (protos === null || protos.every(protoHasPorts)) return null;
  const all = ports.length === 1 && ports[0]!.First === 0 && ports[0]!.Last === 65535;
  return all ? null : `protocol ${protos.join(",")} has no ports: use * as the port`;
}

/** A grant `ip` entry: protocols (null = default set) and ports. */
export interface IpSpec {
  protos: number[] | null;
  ports: PortRange[];
}

/** Parse a grant `ip` entry: `*`, `443`, `tcp:443`, `udp:53`, `icmp:*`, `tcp:8000-8999`. */
export function parseIpSpec(text: string): Parsed<IpSpec> {
  if (text === "*") return ok({ protos: null, ports: [ALL_PORTS] });
  const colon = text.indexOf(":");
  if (colon < 0) {
    const ports = parsePorts(text);
    return ports.ok ? ok({ protos: null, ports: ports.value }) : ports;
  }
  const protos = parseProto(text.slice(0, colon));
  if (!protos.ok) return protos;
  const ports = parsePorts(text.slice(colon + 1));
  if (!ports.ok) return ports;
  const bad = checkProtoPorts(protos.value, ports.value);
  return bad ? fail(bad) : ok({ protos: protos.value, ports: ports.value });
}

/**
 * Split an ACL destination `host:ports` at its last colon (so `tag:web:443`
 * and `fd7a::1:22` work); `[v6]:ports` brackets are accepted too.
 */
export function splitHostPorts(text: string): Parsed<{ host: string; ports: string }> {
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0 || text[close + 1] !== ":") return fail(`"${text}" must look like [address]:ports`);
    return ok({ host: text.slice(1, close), ports: text.slice(close + 2) });
  }
  const colon = text.lastIndexOf(":");
  if (colon <= 0) return fail(`"${text}" needs ports: write ${text || "host"}:* or ${text || "host"}:22`);
  return ok({ host: text.slice(0, colon), ports: text.slice(colon + 1) });
}

/** Whether `port` lies in one of `ranges`. */
export function portIn(ranges: readonly PortRange[], port: number): boolean {
  for (const r of ranges) if (port >= r.First && port <= r.Last) return true;
  return false;
}
