// Exit nodes, as a user runs them: one gateway offers itself
// (`--advertise-exit-node`), an admin approves it, and another gateway
// sends its internet traffic through it (`--exit-node`) — a host that only
// the exit node can reach answers the client, seeing the exit node's own
// address; the client's control connection stays outside the tunnel; and
// `set --exit-node=` and `down` take every rule and route away again.
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPreAuthKey } from "@trellis/control";
import { openDatabase, type Database } from "@trellis/db";
import { api, type Caller, firstAdmin } from "../src/console";
import { cli, stopDaemon } from "../src/gateway";
import { canUseNetns, createExitTopology, type ExitTopology } from "../src/netns";
import { ROOT, startTrellis, tempDataDir, type RunningTrellis } from "../src/server";
import { until } from "../src/wait";
import { tearDown } from "../src/teardown";

const canUseTun =
  canUseNetns &&
  existsSync("/dev/net/tun") &&
  existsSync(join(ROOT, "gateway/build/Release/trellis_tun.node"));
if (!canUseTun) console.warn("skipping exit nodes: needs root, ip netns, nft and the TUN addon");

const data = tempDataDir();
const work = mkdtempSync(join(tmpdir(), "trellis-exit-"));
const keyFile = join(work, "auth.key");
const exitDir = join(work, "exit");
const clientDir = join(work, "client");
const exitUsDir = join(work, "exit-us");
let topo: ExitTopology;
let trellis: RunningTrellis;
let db: Database;
let url: string;
let web: ChildProcess | undefined;

/** GET http://webIp:8080/ from inside the client namespace; the body, or the error's text. */
function fetchFromClient(): Promise<string> {
  const script = `fetch("http://${topo.webIp}:8080/", { signal: AbortSignal.timeout(4000) }).then((r) => r.text()).then((t) => console.log(t), (e) => console.log("failed: " + (e.cause?.code ?? e.message)))`;
  return new Promise((resolve, reject) => {
    execFile(
      "ip",
      ["netns", "exec", topo.clientNs, process.execPath, "-e", script],
      { timeout: 15_000, encoding: "utf8" },
      (err, stdout) => (err ? reject(err) : resolve(stdout.trim())),
    );
  });
}

function rules(): string {
  return execFileSync("ip", ["-n", topo.clientNs, "rule", "show"], { encoding: "utf8" });
}

interface ExitStatus {
  control: string;
  exitNode: { name: string; routing: boolean; error: string | null } | null;
}

async function clientStatus(): Promise<ExitStatus> {
  const r = await cli(["status", "--json", "--state-dir", clientDir], topo.clientNs);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as ExitStatus;
}

describe.skipIf(!canUseTun)("exit nodes", () => {
  let admin: Caller;

  beforeAll(async () => {
    topo = createExitTopology();
    trellis = await startTrellis({ dataDir: data.dir, env: { HOST: topo.hostIp } });
    url = trellis.url.replace("127.0.0.1", topo.hostIp);
    db = await openDatabase(`file:${join(data.dir, "trellis.db")}`);
    const key = (await createPreAuthKey(db, { tags: ["tag:node"], reusable: true }, "local")).key;
    writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });
    admin = await firstAdmin(url, trellis.setupLink());
    // "The internet": a web server only the exit node can reach; it answers with who asked.
    web = spawn(
      "ip",
      [
        "netns",
        "exec",
        topo.webNs,
        process.execPath,
        "-e",
        `require("node:http").createServer((q, r) => r.end("internet sees " + q.socket.remoteAddress.replace(/^::ffff:/, ""))).listen(8080, "${topo.webIp}")`,
      ],
      { stdio: "ignore" },
    );
  }, 180_000);

  afterAll(
    () =>
      tearDown(
        ...[clientDir, exitDir, exitUsDir].map((dir) => () => stopDaemon(dir)),
        () => web?.kill("SIGKILL"),
        () => topo?.remove(),
        () => db?.close(),
        () => trellis?.stop(),
        () => data.remove(),
        () => rmSync(work, { recursive: true, force: true }),
      ),
    60_000,
  );

  it("sends the client's internet traffic through the approved exit node, and stops cleanly", async () => {
    const up = (dir: string, ns: string, ...args: string[]) =>
      cli(["up", "--login-server", url, "--auth-key", `file:${keyFile}`, "--state-dir", dir, ...args], ns);
    const offered = await up(exitDir, topo.exitNs, "--hostname", "exit", "--advertise-exit-node");
    expect(offered.code, offered.stderr).toBe(0);
    expect(offered.stdout).toContain("awaiting approval in the console: 0.0.0.0/0, ::/0");

    // Before anything: the client has no way to the web host.
    const joined = await up(clientDir, topo.clientNs, "--hostname", "client");
    expect(joined.code, joined.stderr).toBe(0);
    expect(await fetchFromClient()).toMatch(/^failed/);

    // Asking for an exit node that is not approved says why, and routes nothing.
    const early = await cli(["set", "--exit-node", "exit", "--state-dir", clientDir], topo.clientNs);
    expect(early.code, early.stderr).toBe(0);
    const waiting = await clientStatus();
    expect(waiting.exitNode).toMatchObject({
      routing: false,
      error: expect.stringMatching(/not an exit node/),
    });
    expect(rules()).not.toContain("lookup 7345");

    // The admin approves the exit routes.
    const list = await api(url, admin, "GET", "/api/v1/machines?q=exit");
    const exit = (list.body.items as { id: string; name: string }[]).find((m) => m.name === "exit")!;
    const approved = await api(url, admin, "POST", `/api/v1/machines/${exit.id}/routes`, {
      routes: ["0.0.0.0/0", "::/0"],
    });
    expect(approved.status).toBe(200);

    const routing = await until("the client routing through the exit node", async () => {
      const s = await clientStatus();
      return s.exitNode?.routing ? s : null;
    });
    expect(routing.exitNode).toEqual({ name: "exit", routing: true, error: null });
    // The control server stays outside the tunnel (a rule of its own), the rest goes in.
    expect(rules()).toMatch(
      new RegExp(`5200:\\s+from all to ${topo.hostIp.replaceAll(".", "\\.")} lookup main`),
    );
    expect(rules()).toMatch(/5270:\s+from all lookup 7345/);
    const answer = await until("an answer from the web host", async () => {
      const t = await fetchFromClient();
      return t.startsWith("internet") ? t : null;
    });
    // It saw the exit node's own address: the exit node masqueraded the client.
    expect(answer).toBe(`internet sees ${topo.webIp.replace(/\.2$/, ".1")}`);
    await new Promise((r) => setTimeout(r, 2000));
    expect((await clientStatus()).control).toBe("connected");
    const text = await cli(["status", "--state-dir", clientDir], topo.clientNs);
    expect(text.stdout).toMatch(/exit\s+exit: internet traffic goes through it/);

    // Stop using it: rules gone, the web host unreachable again.
    const off = await cli(["set", "--exit-node=", "--state-dir", clientDir], topo.clientNs);
    expect(off.code, off.stderr).toBe(0);
    await until("the exit rules removed", () => !rules().includes("lookup 7345"));
    expect(await fetchFromClient()).toMatch(/^failed/);

    // Using it again and going down also removes everything.
    await cli(["set", "--exit-node", "exit", "--state-dir", clientDir], topo.clientNs);
    await until("routing again", async () => (await clientStatus()).exitNode?.routing);
    const down = await cli(["down", "--state-dir", clientDir], topo.clientNs);
    expect(down.code, down.stderr).toBe(0);
    expect(rules()).not.toMatch(/lookup 7345|suppress_prefixlength|^5200:/m);
  }, 180_000);

  it("a userspace exit node carries the client's internet traffic with its own sockets", async () => {
    const up = (dir: string, ns: string, ...args: string[]) =>
      cli(["up", "--login-server", url, "--auth-key", `file:${keyFile}`, "--state-dir", dir, ...args], ns);
    // The TUN exit node leaves; one in userspace mode (no device, no nftables) takes its place.
    expect((await cli(["down", "--state-dir", exitDir], topo.exitNs)).code).toBe(0);
    const offered = await up(
      exitUsDir,
      topo.exitNs,
      "--hostname",
      "exit-us",
      "--advertise-exit-node",
      "--userspace",
    );
    expect(offered.code, offered.stderr).toBe(0);
    const list = await api(url, admin, "GET", "/api/v1/machines?q=exit-us");
    const exit = (list.body.items as { id: string; name: string }[]).find((m) => m.name === "exit-us")!;
    const approved = await api(url, admin, "POST", `/api/v1/machines/${exit.id}/routes`, {
      routes: ["0.0.0.0/0", "::/0"],
    });
    expect(approved.status).toBe(200);
    await until("the userspace exit node serving the exit routes", async () => {
      const r = await cli(["status", "--json", "--state-dir", exitUsDir], topo.exitNs);
      const st = JSON.parse(r.stdout) as { forwarding: { routes: string[] } | null };
      return st.forwarding?.routes.includes("0.0.0.0/0");
    });
    expect(execFileSync("ip", ["-n", topo.exitNs, "link", "show"], { encoding: "utf8" })).not.toContain(
      "trellis",
    );

    const joined = await up(clientDir, topo.clientNs, "--hostname", "client", "--exit-node", "exit-us");
    expect(joined.code, joined.stderr).toBe(0);
    await until("the client routing through exit-us", async () => (await clientStatus()).exitNode?.routing);
    const answer = await until("an answer from the web host", async () => {
      const t = await fetchFromClient();
      return t.startsWith("internet") ? t : null;
    });
    // The exit node's own socket made the connection: the web host sees its address.
    expect(answer).toBe(`internet sees ${topo.webIp.replace(/\.2$/, ".1")}`);
    expect((await cli(["down", "--state-dir", clientDir], topo.clientNs)).code).toBe(0);
  }, 180_000);
});
