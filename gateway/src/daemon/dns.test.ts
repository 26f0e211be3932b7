// The gateway's MagicDNS resolver over real UDP on loopback: tailnet names
// from the map (A, AAAA, NXDOMAIN for a tailnet name that does not exist),
// everything else passed to the upstream resolver unchanged, nothing for
// strangers or malformed queries; and resolv.conf put back as it was.
import { createSocket, type Socket } from "node:dgram";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import dnsPacket, { type Packet } from "dns-packet";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "@trellis/log";
import { MagicDnsResolver, nameserversOf, ResolvConf } from "./dns";

const log = createLogger("test", "silent");
const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

async function udp(): Promise<Socket> {
  const s = createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", r));
  cleanup.push(() => s.close());
  return s;
}

/** Ask `port` on 127.0.0.1; the decoded answer, or null after 1.5 s without one. */
async function ask(
  port: number,
  name: string,
  type: "A" | "AAAA" | "TXT",
  raw?: Buffer,
): Promise<Packet | null> {
  const s = await udp();
  const id = Math.floor(Math.random() * 65535);
  const query =
    raw ??
    dnsPacket.encode({ type: "query", id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }] });
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), 1500);
    s.once("message", (m) => {
      clearTimeout(timer);
      resolve(dnsPacket.decode(m));
    });
    s.send(query, port, "127.0.0.1");
  });
}

async function resolver(local = ["127.0.0.1"]) {
  // An upstream that answers TXT "upstream" for anything.
  const upstream = await udp();
  upstream.on("message", (m, r) => {
    const q = dnsPacket.decode(m);
    upstream.send(
      dnsPacket.encode({
        type: "response",
        id: q.id,
        questions: q.questions,
        answers: [{ type: "TXT", name: q.questions![0]!.name, data: "upstream" }],
      }),
      r.port,
      r.address,
    );
  });
  const names: Record<string, { v4: string[]; v6: string[] } | null> = {
    db: { v4: ["100.64.0.7"], v6: ["fd7a:115c:a1e0::7"] },
    "db.trellis.internal": { v4: ["100.64.0.7"], v6: ["fd7a:115c:a1e0::7"] },
  };
  const r = new MagicDnsResolver({
    log,
    lookup: (name) => (name in names ? names[name] : name.endsWith(".trellis.internal") ? null : undefined),
    upstream: () => ["127.0.0.1"],
    upstreamPort: upstream.address().port,
    local: () => local,
  });
  await r.listen("127.0.0.1", 0);
  cleanup.push(() => r.close());
  return { r, port: Number(r.address!.split(":")[1]) };
}

describe("MagicDNS resolver", () => {
  it("answers tailnet names from the map, NXDOMAIN for the domain's unknown names", async () => {
    const { port } = await resolver();
    const a = await ask(port, "db.trellis.internal", "A");
    expect(a?.answers).toEqual([expect.objectContaining({ type: "A", data: "100.64.0.7" })]);
    expect((a?.flags ?? 0) & dnsPacket.AUTHORITATIVE_ANSWER).toBeTruthy();
    const aaaa = await ask(port, "DB.trellis.internal.", "AAAA");
    expect(aaaa?.answers).toEqual([expect.objectContaining({ type: "AAAA", data: "fd7a:115c:a1e0::7" })]);
    expect((await ask(port, "db", "A"))?.answers).toHaveLength(1);
    const missing = await ask(port, "gone.trellis.internal", "A");
    // The response code is the flags' low four bits: 3 is NXDOMAIN.
    expect((missing?.flags ?? 0) & 0xf).toBe(3);
    expect(missing?.answers).toEqual([]);
  });

  it("passes other names to the upstream resolver and returns its answer unchanged", async () => {
    const { port } = await resolver();
    const r = await ask(port, "example.com", "TXT");
    expect(r?.answers?.[0]).toMatchObject({ type: "TXT", name: "example.com" });
    expect(String((r?.answers?.[0] as { data: Buffer[] }).data[0])).toBe("upstream");
  });

  it("answers nobody but this machine, and drops what it cannot read", async () => {
    const stranger = await resolver([]);
    expect(await ask(stranger.port, "db.trellis.internal", "A")).toBeNull();
    expect(stranger.r.drops).toEqual({ dns_not_local: 1 });
    const { r, port } = await resolver();
    expect(await ask(port, "x", "A", Buffer.from("not dns"))).toBeNull();
    expect(r.drops).toEqual({ dns_malformed: 1 });
  });
});

describe("resolv.conf while up (--accept-dns)", () => {
  it("points at the resolver, keeps the original once, and puts it back", () => {
    const dir = mkdtempSync(join(tmpdir(), "trellis-dns-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, "resolv.conf");
    const original = "# the system's\nnameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch corp.example\n";
    writeFileSync(path, original);
    const state = join(dir, "state");
    rmSync(state, { force: true, recursive: true });
    mkdirSync(state);
    const rc = new ResolvConf(state, path);
    rc.apply("100.64.0.5", ["trellis.internal", "corp.example"]);
    expect(nameserversOf(readFileSync(path, "utf8"))).toEqual(["100.64.0.5"]);
    expect(readFileSync(path, "utf8")).toContain("search trellis.internal corp.example");
    expect(rc.original()).toEqual(["192.0.2.53", "192.0.2.54"]);
    // Applied again (a restart after a crash): the original stays the system's.
    new ResolvConf(state, path).apply("100.64.0.5", []);
    new ResolvConf(state, path).restore();
    expect(readFileSync(path, "utf8")).toBe(original);
  });
});
