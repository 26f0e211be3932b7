import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { main, run } from "./cli";

function capture(argv: string[]) {
  let out = "";
  const code = run(argv, (s) => (out += s));
  return { code, out };
}

describe("trellis CLI", () => {
  it("prints its version", () => {
    expect(capture(["version"])).toEqual({ code: 0, out: "trellis 0.1.0\n" });
  });

  it("prints a stable node public key and never the private key", () => {
    const dir = mkdtempSync(join(tmpdir(), "trellis-cli-"));
    try {
      const first = capture(["key", "--state-dir", dir]);
      expect(first.code).toBe(0);
      expect(first.out).toMatch(/^nodekey:[0-9a-f]{64}\n$/);
      expect(capture(["key", "--state-dir", dir]).out).toBe(first.out);
      expect(first.out).not.toMatch(/privkey/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("lists the daemon's commands in its help", () => {
    const { code, out } = capture(["--help"]);
    expect(code).toBe(0);
    for (const cmd of ["up --login-server URL", "down", "status [--json]", "ping PEER", "logout", "daemon"]) {
      expect(out).toContain(`  ${cmd}`);
    }
  });

  it("rejects unknown options", () => {
    expect(() => capture(["key", "--bogus"])).toThrow(/bogus/);
  });
});

describe("trellis set", () => {
  const dir = mkdtempSync(join(tmpdir(), "trellis-set-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  async function cli(argv: string[]) {
    let out = "";
    let err = "";
    const code = await main(
      argv,
      (s) => (out += s),
      (s) => (err += s),
    );
    return { code, out, err };
  }

  it("is listed in the help with its settings", () => {
    const { out } = capture(["--help"]);
    expect(out).toContain("  set [--hostname H] [--advertise-routes CIDR,…] [--advertise-exit-node[=false]]");
    expect(out).toContain("[--accept-routes[=false]]");
  });

  it("wants at least one setting", async () => {
    const r = await cli(["set", "--state-dir", dir]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/trellis set: give a setting to change: --hostname, --advertise-routes/);
  });

  it("takes --dataplane native, wasm or auto for TUN mode only, before asking the daemon", async () => {
    const up = ["up", "--login-server", "http://127.0.0.1:9", "--state-dir", dir];
    let r = await cli([...up, "--dataplane", "dpdk"]);
    expect(r).toMatchObject({ code: 2, out: "" });
    expect(r.err).toBe("trellis up: --dataplane must be native, wasm or auto, not dpdk\n");
    r = await cli([...up, "--dataplane", "native", "--userspace"]);
    expect(r).toMatchObject({ code: 2, out: "" });
    expect(r.err).toMatch(/--dataplane is for TUN mode/);
    expect(capture(["--help"]).out).toContain("[--dataplane native|wasm]");
  });

  it("checks routes with the same parser as up, before asking the daemon", async () => {
    for (const cmd of [["set"], ["up", "--login-server", "http://127.0.0.1:9"]]) {
      const r = await cli([...cmd, "--advertise-routes", "10.1.2.3/16", "--state-dir", dir]);
      expect(r).toMatchObject({ code: 2, out: "" });
      expect(r.err).toBe(
        `trellis ${cmd[0]}: --advertise-routes: "10.1.2.3/16" has host bits set: did you mean 10.1.0.0/16?\n`,
      );
    }
    expect((await cli(["set", "--advertise-routes", "nope", "--state-dir", dir])).err).toMatch(
      /"nope" is not a CIDR prefix such as 10\.0\.0\.0\/24/,
    );
  });

  it("takes --accept-routes and --advertise-exit-node as switches, =true and =false, and nothing else", async () => {
    const r = await cli(["set", "--accept-routes=maybe", "--state-dir", dir]);
    expect(r).toMatchObject({ code: 2, err: 'trellis set: --accept-routes is true or false, not "maybe"\n' });
    expect((await cli(["set", "--accept-routes", "yes", "--state-dir", dir])).code).toBe(2);
  });

  it("says when no daemon runs (nothing was up)", async () => {
    const r = await cli(["set", "--accept-routes=false", "--advertise-exit-node", "--state-dir", dir]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^trellis set: no daemon is running .* \(trellis up starts it\)\n$/);
  });
});

describe("trellis policy", () => {
  const dir = mkdtempSync(join(tmpdir(), "trellis-policy-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const policy = file(
    "policy.hujson",
    `{
  // Engineers reach the web servers; everyone their own devices.
  "groups": { "group:eng": ["alice@example.com"] },
  "tagOwners": { "tag:web": ["group:eng"] },
  "acls": [
    { "action": "accept", "src": ["group:eng"], "dst": ["tag:web:443"] },
  ],
  "ssh": [
    { "action": "accept", "src": ["group:eng"], "dst": ["tag:web"], "users": ["root"] },
  ],
  "tests": [{ "src": "alice@example.com", "accept": ["tag:web:443"], "deny": ["tag:web:22"] }],
}`,
  );
  const topology = file(
    "topo.json",
    JSON.stringify({
      users: [{ id: "1", name: "alice", email: "alice@example.com" }],
      nodes: {
        laptop: {
          hostname: "laptop",
          tags: [],
          ipv4: "100.64.0.1",
          ipv6: "fd7a:115c:a1e0::1",
          user: "alice",
        },
        web: { hostname: "web", tags: ["tag:web"], ipv4: "100.64.0.2", ipv6: "fd7a:115c:a1e0::2" },
      },
    }),
  );

  function capture3(argv: string[]) {
    let out = "";
    let err = "";
    const code = run(
      argv,
      (s) => (out += s),
      (s) => (err += s),
    );
    return { code, out, err };
  }

  it("checks a good policy and runs its tests", () => {
    const r = capture3(["policy", "check", policy]);
    expect(r).toMatchObject({ code: 0, err: "" });
    expect(r.out).toContain("ok (1 access rules, 1 ssh rules, 1 tests passed)");
  });

  it("compiles per-node packet filters as JSON", () => {
    const r = capture3(["policy", "compile", "--policy", policy, "--topology", topology]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({
      laptop: [],
      web: [
        {
          SrcIPs: ["100.64.0.1", "fd7a:115c:a1e0::1"],
          DstPorts: [
            { IP: "100.64.0.2", Ports: { First: 443, Last: 443 } },
            { IP: "fd7a:115c:a1e0::2", Ports: { First: 443, Last: 443 } },
          ],
        },
      ],
    });
  });

  it("reads null routes in a topology as none", () => {
    const topo = file(
      "null-routes.json",
      JSON.stringify({
        users: [{ id: "1", name: "alice", email: "alice@example.com" }],
        nodes: {
          laptop: { ipv4: "100.64.0.1", user: "alice", routable_ips: null, approved_routes: null },
          web: { tags: ["tag:web"], ipv4: "100.64.0.2", routable_ips: null, approved_routes: null },
        },
      }),
    );
    const r = capture3(["policy", "compile", "--policy", policy, "--topology", topo]);
    expect(r).toMatchObject({ code: 0, err: "" });
    expect(JSON.parse(r.out).web).toEqual([
      { SrcIPs: ["100.64.0.1"], DstPorts: [{ IP: "100.64.0.2", Ports: { First: 443, Last: 443 } }] },
    ]);
  });

  it("prints per-node SSH rules", () => {
    const r = capture3(["policy", "ssh", "--policy", policy, "--topology", topology]);
    expect(r.code).toBe(0);
    const ssh = JSON.parse(r.out);
    expect(ssh.laptop).toEqual([]);
    expect(ssh.web[0].principals).toEqual([{ nodeIP: "100.64.0.1" }, { nodeIP: "fd7a:115c:a1e0::1" }]);
    expect(ssh.web[0].sshUsers).toEqual({ root: "root" });
  });

  it("reports a bad policy with line:column and the key, exit 1", () => {
    const bad = file(
      "bad.hujson",
      `{\n  "acls": [\n    { "action": "accept", "src": ["group:nope"], "dst": ["*:*"] },\n  ],\n}\n`,
    );
    const r = capture3(["policy", "check", bad]);
    expect(r.code).toBe(1);
    expect(r.out).toBe("");
    expect(r.err).toContain(`${bad}:3:35: acls[0].src[0]: group "group:nope" is not defined in "groups"`);
  });

  it("names the failing test assertion, exit 1", () => {
    const failing = file(
      "failing.hujson",
      `{ "tagOwners": { "tag:web": [] }, "tests": [{ "src": "bob@example.com", "accept": ["tag:web:80"] }] }`,
    );
    const r = capture3(["policy", "check", failing]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("policy tests failed");
    expect(r.err).toContain("tests[0].accept[0]: bob@example.com cannot reach tag:web:80 (tcp)");
  });

  it("reports a bad topology and a missing file, exit 1", () => {
    const topo = file(
      "bad-topo.json",
      JSON.stringify({ nodes: { a: { ipv4: "100.64.0.999", user: "ghost" } } }),
    );
    const r = capture3(["policy", "compile", "--policy", policy, "--topology", topo]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('nodes.a.user: unknown user "ghost"');
    expect(r.err).toContain('"100.64.0.999" is not an IPv4 address');
    const missing = capture3(["policy", "check", join(dir, "nope.hujson")]);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain("no such file");
  });

  it("exits 2 on usage errors", () => {
    expect(capture3(["policy"]).code).toBe(2);
    expect(capture3(["policy", "frobnicate"]).code).toBe(2);
    expect(capture3(["policy", "check"]).code).toBe(2);
    expect(capture3(["policy", "compile", "--policy", policy]).err).toContain("--topology is required");
    expect(capture3(["policy", "ssh", "--policy", policy, "--topology", topology, "--bogus"]).code).toBe(2);
  });
});
