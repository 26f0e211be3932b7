// MagicDNS for a gateway in TUN mode: a small resolver on the node's own
// tailnet address (port 53) that answers the tailnet's names from the map —
// `db`, `db.trellis.internal` — and passes every other query, unchanged, to
// the upstream resolvers (the tailnet's DNS settings, or the system's own
// from before). It answers only this machine (queries from its own
// addresses), so it is not an open resolver for the tailnet. With
// --accept-dns the system's resolv.conf points at it while the node is up,
// and is put back on down (the original is kept in the state directory, so
// a crash is undone at the next start).
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import dnsPacket, { type Packet } from "dns-packet";
import type { Logger } from "@trellis/log";

/** What the map says a name is: its addresses, or null for a name of the tailnet's domain that does not exist. */
export type NameLookup = (name: string) => { v4: string[]; v6: string[] } | null | undefined;

/** Queries being forwarded at once; more get SERVFAIL. */
const MAX_FORWARDS = 256;
/** An upstream resolver has this long to answer. */
const FORWARD_TIMEOUT_MS = 3000;
const TTL_S = 60;
const MAX_QUERY_BYTES = 4096;
// Response codes (RFC 1035 §4.1.1): the low four bits of the flags as dns-packet encodes them.
const RCODE_NOERROR = 0;
const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;

export interface ResolverOptions {
  log: Logger;
  /** `undefined`: not a tailnet name (forward it); null: a tailnet name that does not exist (NXDOMAIN). */
  lookup: NameLookup;
  /** Where other queries go (IP addresses), in order. */
  upstream: () => string[];
  /** Addresses queries may come from (this machine's own). */
  local: () => string[];
  /** The upstream resolvers' port (53; tests use another). */
  upstreamPort?: number;
}

export class MagicDnsResolver {
  private socket: Socket | null = null;
  private forwards = 0;
  /** Queries refused or dropped, by reason (for status). */
  readonly drops: Record<string, number> = {};

  constructor(private readonly opts: ResolverOptions) {}

  /** Listen on `address:port`; resolves once bound. */
  async listen(address: string, port = 53): Promise<void> {
    const sock = createSocket({ type: address.includes(":") ? "udp6" : "udp4" });
    await new Promise<void>((resolve, reject) => {
      sock.once("error", reject);
      sock.bind(port, address, () => {
        sock.off("error", reject);
        resolve();
      });
    });
    sock.on("error", (err) => this.opts.log.warn({ err: err.message }, "MagicDNS socket error"));
    sock.on("message", (msg, rinfo) => void this.query(msg, rinfo));
    this.socket = sock;
  }

  get address(): string | null {
    const a = this.socket?.address();
    return a ? `${a.address}:${a.port}` : null;
  }

  private drop(reason: string): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
  }

  private async query(msg: Buffer, from: RemoteInfo): Promise<void> {
    if (!this.opts.local().includes(from.address)) return this.drop("dns_not_local");
    if (msg.length > MAX_QUERY_BYTES) return this.drop("dns_too_large");
    let q: Packet;
    try {
      q = dnsPacket.decode(msg);
    } catch {
      return this.drop("dns_malformed");
    }
    const question = q.questions?.[0];
    if (q.type !== "query" || !question || q.questions!.length !== 1) return this.drop("dns_malformed");
    const name = question.name.toLowerCase().replace(/\.$/, "");
    const known = this.opts.lookup(name);
    if (known === undefined) return this.forward(msg, from);
    const answers: dnsPacket.Answer[] = [];
    if (known && question.type === "A") {
      for (const a of known.v4) answers.push({ type: "A", name: question.name, ttl: TTL_S, data: a });
    }
    if (known && question.type === "AAAA") {
      for (const a of known.v6) answers.push({ type: "AAAA", name: question.name, ttl: TTL_S, data: a });
    }
    this.reply(
      dnsPacket.encode({
        type: "response",
        id: q.id,
        flags:
          dnsPacket.AUTHORITATIVE_ANSWER |
          ((q.flags ?? 0) & dnsPacket.RECURSION_DESIRED) |
          dnsPacket.RECURSION_AVAILABLE |
          (known ? RCODE_NOERROR : RCODE_NXDOMAIN),
        questions: q.questions,
        answers,
      }),
      from,
    );
  }

  private reply(data: Uint8Array, to: RemoteInfo): void {
    this.socket?.send(data, to.port, to.address);
  }

  /** Pass the query as it is to the upstream resolvers in turn; SERVFAIL when none answers. */
  private async forward(msg: Buffer, from: RemoteInfo): Promise<void> {
    const upstream = this.opts.upstream();
    if (upstream.length === 0 || this.forwards >= MAX_FORWARDS) {
      this.drop(upstream.length === 0 ? "dns_no_upstream" : "dns_busy");
      return this.reply(servfail(msg), from);
    }
    this.forwards++;
    try {
      for (const server of upstream) {
        const answer = await ask(server, this.opts.upstreamPort ?? 53, msg);
        if (answer) return this.reply(answer, from);
      }
      this.drop("dns_upstream_silent");
      this.reply(servfail(msg), from);
    } finally {
      this.forwards--;
    }
  }

  close(): void {
    this.socket?.close();
    this.socket = null;
  }
}

/** SERVFAIL for `query` (its id and question kept); empty when the query cannot even be read. */
function servfail(query: Buffer): Uint8Array {
  try {
    const q = dnsPacket.decode(query);
    return dnsPacket.encode({
      type: "response",
      id: q.id,
      flags: RCODE_SERVFAIL,
      questions: q.questions ?? [],
    });
  } catch {
    return new Uint8Array(0);
  }
}

/** One query to one resolver over UDP; its answer, or null after FORWARD_TIMEOUT_MS. */
function ask(server: string, port: number, msg: Buffer): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const sock = createSocket(server.includes(":") ? "udp6" : "udp4");
    const done = (v: Buffer | null) => {
      clearTimeout(timer);
      sock.close();
      resolve(v);
    };
    const timer = setTimeout(() => done(null), FORWARD_TIMEOUT_MS);
    sock.on("error", () => done(null));
    sock.on("message", (answer, rinfo) => {
      // Only the resolver asked, with the query's id, answers it.
      if (rinfo.address === server && answer.length >= 2 && answer.readUInt16BE(0) === msg.readUInt16BE(0)) {
        done(answer);
      }
    });
    sock.send(msg, port, server);
  });
}

// ---- the system's resolver configuration (--accept-dns) ----------------------------

const RESOLV_CONF = "/etc/resolv.conf";
const BACKUP_NAME = "resolv.conf.before-trellis";

/** The `nameserver` addresses of a resolv.conf text. */
export function nameserversOf(text: string): string[] {
  return [...text.matchAll(/^\s*nameserver\s+(\S+)/gm)].map((m) => m[1]!);
}

/**
 * Points /etc/resolv.conf at the resolver while the node is up. The
 * original is saved in the state directory first (once: a backup left by a
 * crash is the original, not the file this daemon wrote).
 */
export class ResolvConf {
  private readonly backup: string;

  constructor(
    stateDir: string,
    private readonly path = RESOLV_CONF,
  ) {
    this.backup = join(stateDir, BACKUP_NAME);
  }

  /** The system's own nameservers (from before Trellis changed anything). */
  original(): string[] {
    const source = existsSync(this.backup) ? this.backup : this.path;
    try {
      return nameserversOf(readFileSync(source, "utf8"));
    } catch {
      return [];
    }
  }

  /** Use `nameserver`, searching `domains` first. */
  apply(nameserver: string, domains: string[]): void {
    if (!existsSync(this.backup)) writeFileSync(this.backup, readFileSync(this.path), { mode: 0o600 });
    const text = [
      "# Written by trellis (--accept-dns) while the node is up; the original comes back on trellis down.",
      `nameserver ${nameserver}`,
      ...(domains.length ? [`search ${domains.join(" ")}`] : []),
      "",
    ].join("\n");
    // Written in place: resolv.conf is often a bind mount (containers, `ip netns exec`), which a rename would not reach.
    writeFileSync(this.path, text);
  }

  /** Put the original back (if this daemon, or one before it, changed it). */
  restore(): void {
    if (!existsSync(this.backup)) return;
    writeFileSync(this.path, readFileSync(this.backup));
    rmSync(this.backup, { force: true });
  }
}
