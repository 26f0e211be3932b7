// A browser tab as a node of the tailnet, in Debian's Chromium behind a NAT
// (a network namespace this test makes), against the real server and nodes
// of the engine's Node flavour: it joins, pings over the relay and then over
// a WebRTC data channel (the page shows the change), carries TCP through its
// userspace stack, reaches another user's browser directly, falls back to
// the relay when WebRTC is blocked and comes back without breaking a TCP
// stream, enforces the policy, and keeps its key out of the page.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Page } from "playwright-core";
import type { NodeEngine } from "@trellis/client";
import type { BrowserNodeClient } from "@trellis/client/browser";
import { encodeKey } from "@trellis/proto";
import { generateKeyPair } from "@trellis/proto/keyfile";
import { ARTIFACTS, hasChromium } from "../src/browser";
import { api } from "../src/console";
import { canUseNetns } from "../src/netns";
import { connect, startBrowserTailnet, until, type BrowserTailnet } from "../src/tailnet";

let net: BrowserTailnet;

beforeAll(async () => {
  if (!canUseNetns || !hasChromium) return;
  net = await startBrowserTailnet();
}, 180_000);
afterAll(async () => {
  await net?.close();
});

/** The path the page shows for a peer ("direct", "relay" or "none"). */
function shownPath(page: Page, peer: string): Promise<string | null> {
  return page.locator(`[data-testid=connect-path][data-peer="${peer}"]`).getAttribute("data-path");
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** Serve an echo on `port` of `e`'s own stack. */
function echo(e: NodeEngine, port: number): void {
  e.listenTcp(port, (c) => void c.readable.pipeTo(c.writable).catch(() => undefined));
}

describe.skipIf(!canUseNetns || !hasChromium)("a browser tab as a node", () => {
  let alice: Page;
  let server: NodeEngine;

  it("joins, pings a Node peer over the relay and then over a direct data channel, and carries TCP", async () => {
    server = await net.nodePeer("server");
    alice = await net.userPage("alice@example.com");
    // Every path the page shows for "server", in order.
    await alice.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { shownPaths: string[] }).shownPaths = seen;
      const look = () => {
        const p = document
          .querySelector('[data-testid=connect-path][data-peer="server"]')
          ?.getAttribute("data-path");
        if (p && seen[seen.length - 1] !== p) seen.push(p);
      };
      new MutationObserver(look).observe(document.body, { subtree: true, childList: true, attributes: true });
    });
    const t0 = Date.now();
    await connect(alice);
    process.stderr.write(`browser node connected ${Date.now() - t0} ms after the click\n`);
    await alice.getByTestId("connect-peers").getByText("server", { exact: true }).waitFor();

    // The first ping goes over the relay: the data channel is still being negotiated.
    const row = alice.locator("tr", { has: alice.getByText("server", { exact: true }) });
    await row.getByTestId("connect-ping").click();
    await expect
      .poll(() => row.getByTestId("connect-ping-result").innerText(), { timeout: 15_000 })
      .toMatch(/^\d+ ms via (relay|direct path)$/);

    // Then the page shows the direct path, and pings take it.
    await until("the direct path shown", async () => (await shownPath(alice, "server")) === "direct", 40_000);
    await row.getByTestId("connect-ping").click();
    await expect
      .poll(() => row.getByTestId("connect-ping-result").innerText(), { timeout: 15_000 })
      .toMatch(/^\d+ ms via direct path$/);
    await row.getByTestId("connect-peer").click();
    expect(await alice.getByTestId("connect-peer-path").innerText()).toMatch(
      /^Direct: .*WebRTC data channel/,
    );
    // The machine's row with its apps and the ping's answer fits a desktop window without scrolling sideways.
    const sideways = await alice.getByTestId("connect-peers").evaluate((el) => {
      for (let e: Element | null = el; e; e = e.parentElement)
        if (e.scrollWidth > e.clientWidth + 1) return true;
      return false;
    });
    expect(sideways, "the machines table scrolls sideways at 1280 px").toBe(false);
    // Before any status the page shows no path; then the relay, then the direct path.
    const shown = await alice.evaluate(() => (window as unknown as { shownPaths: string[] }).shownPaths);
    expect(shown.filter((p) => p !== "none")).toEqual(["relay", "direct"]);

    // TCP through the userspace stacks on both ends: an echo of 200 kB, checked byte for byte.
    echo(server, 7);
    const echoed = await alice.evaluate(async () => {
      const node = (window as unknown as { trellisNode: BrowserNodeClient }).trellisNode;
      const c = await node.connectTcp("server", 7, 5000);
      const payload = Uint8Array.from({ length: 200_000 }, (_, i) => (i * 31) % 251);
      const writer = c.writable.getWriter();
      const reader = c.readable.getReader();
      void writer.write(payload);
      let n = 0;
      let same = true;
      while (n < payload.length) {
        const r = await reader.read();
        if (r.done) break;
        for (let i = 0; i < r.value.length; i++) if (r.value[i] !== payload[n + i]) same = false;
        n += r.value.length;
      }
      await writer.close();
      return { n, same };
    });
    expect(echoed).toEqual({ n: 200_000, same: true });
    const status = server.status().peers.find((p) => p.os === "browser")!;
    expect(status).toMatchObject({ path: "direct" });
    expect(status.rxBytes).toBeGreaterThan(200_000);
    await shot(alice, "browser-node-direct");
  });

  it("reaches another user's browser over a direct path", async () => {
    const bob = await net.userPage("bob@example.com");
    await connect(bob);
    const bobName = (await bob.getByTestId("connect-name").innerText()).split(".")[0]!;
    const row = alice.locator("tr", { has: alice.getByText(bobName, { exact: true }) });
    await row.waitFor({ timeout: 15_000 });
    // Paths are made for traffic: the first ping may take the relay, and starts the data channel.
    await row.getByTestId("connect-ping").click();
    await expect
      .poll(() => row.getByTestId("connect-ping-result").innerText(), { timeout: 15_000 })
      .toMatch(/^\d+ ms via (relay|direct path)$/);
    await until(
      "the direct path between the browsers",
      async () => (await shownPath(alice, bobName)) === "direct",
      40_000,
    );
    await row.getByTestId("connect-ping").click();
    await expect
      .poll(() => row.getByTestId("connect-ping-result").innerText(), { timeout: 15_000 })
      .toMatch(/^\d+ ms via direct path$/);
    // And the other way, from bob's page.
    const aliceName = (await alice.getByTestId("connect-name").innerText()).split(".")[0]!;
    expect(await shownPath(bob, aliceName)).toBe("direct");
    await bob.context().close();
  });

  it("moves to the relay when WebRTC is blocked and back when it is not, keeping a TCP stream open", async () => {
    echo(server, 9);
    // One connection, held by the page for the whole test, echoing each round.
    const round = (label: string) =>
      alice.evaluate(async (label) => {
        const w = window as unknown as {
          trellisNode: BrowserNodeClient;
          held?: {
            writer: WritableStreamDefaultWriter<Uint8Array>;
            reader: ReadableStreamDefaultReader<Uint8Array>;
          };
        };
        if (!w.held) {
          const c = await w.trellisNode.connectTcp("server", 9, 5000);
          w.held = { writer: c.writable.getWriter(), reader: c.readable.getReader() };
        }
        const payload = new TextEncoder().encode(`${label}:`.padEnd(50_000, label[0]));
        void w.held.writer.write(payload);
        const got: number[] = [];
        while (got.length < payload.length) {
          const r = await w.held.reader.read();
          if (r.done) throw new Error("the connection ended");
          got.push(...r.value);
        }
        return new TextDecoder().decode(Uint8Array.from(got)) === new TextDecoder().decode(payload);
      }, label);
    expect(await round("direct")).toBe(true);
    expect(await shownPath(alice, "server")).toBe("direct");

    const block = net.nat.blockUdp();
    try {
      await until("the relay shown", async () => (await shownPath(alice, "server")) === "relay", 30_000);
      expect(await round("relay")).toBe(true);
      expect(server.status().peers.find((p) => p.os === "browser")).toMatchObject({ path: "relay" });
    } finally {
      block.remove();
    }
    await until("the direct path again", async () => (await shownPath(alice, "server")) === "direct", 60_000);
    expect(await round("back")).toBe(true);
  });

  it("lists only what the policy allows, and drops and counts what it forbids", async () => {
    const locked = await net.nodePeer("locked", { tags: ["tag:locked"] });
    await until("alice sees locked (the default policy)", () =>
      alice.getByTestId("connect-peers").getByText("locked", { exact: true }).count(),
    );
    // alice may reach the server's port 7; nothing may reach alice; "locked" takes no part.
    const version = await net.savePolicy({
      tagOwners: { "tag:server": [], "tag:locked": [] },
      acls: [{ action: "accept", src: ["alice@example.com"], dst: ["tag:server:7"] }],
    });
    await until(
      "locked gone from alice's page",
      async () =>
        (await alice.getByTestId("connect-peers").getByText("locked", { exact: true }).count()) === 0,
    );
    await until("the policy at the server", () => server.netmap?.policyVersion === version);
    expect(locked.netmap!.peers.map((p) => p.name)).not.toContain("alice");
    // The server sees alice (it must answer her) but may not open anything to her: her filter drops it.
    const aliceName = (await alice.getByTestId("connect-name").innerText()).split(".")[0]!;
    await expect(server.ping(aliceName, { timeoutMs: 1500 })).rejects.toThrow();
    await until("a counted drop on alice's page", async () =>
      /not allowed by the access controls: [1-9]/.test(await alice.getByTestId("connect-drops").innerText()),
    );
    await shot(alice, "browser-node-drops");
    // What she may do still works: port 7 of the server.
    const ok = await alice.evaluate(async () => {
      const node = (window as unknown as { trellisNode: BrowserNodeClient }).trellisNode;
      const c = await node.connectTcp("server", 7, 5000);
      await c.writable.getWriter().close();
      return c.remote.port;
    });
    expect(ok).toBe(7);
  });

  it("keeps the node key out of the page and moves an older page's key into the worker", async () => {
    const { privateKey, publicKey } = generateKeyPair();
    const legacy = encodeKey("privkey", privateKey);
    const carol = await net.userPage("carol@example.com", async (context) => {
      // Before any Trellis script: record every message a port delivers to the page, and plant
      // the key an older Trellis page kept in localStorage.
      await context.addInitScript((legacyKey: string) => {
        const seen: string[] = [];
        (window as unknown as { portMessages: string[] }).portMessages = seen;
        window.addEventListener("message", (e) => seen.push(JSON.stringify(e.data)), true);
        const original = Object.getOwnPropertyDescriptor(MessagePort.prototype, "onmessage")!;
        Object.defineProperty(MessagePort.prototype, "onmessage", {
          ...original,
          set(fn: ((e: MessageEvent) => void) | null) {
            original.set!.call(
              this,
              fn &&
                ((e: MessageEvent) => {
                  try {
                    seen.push(
                      JSON.stringify(e.data, (_k, v) =>
                        v instanceof ArrayBuffer ? [...new Uint8Array(v)] : v,
                      ),
                    );
                  } catch {
                    seen.push(String(e.data));
                  }
                  fn.call(this, e);
                }),
            );
          },
        });
        if (location.pathname === "/connect" && !sessionStorage.getItem("planted")) {
          localStorage.setItem("trellis.node.privkey", legacyKey);
          sessionStorage.setItem("planted", "1");
        }
      }, legacy);
    });
    await connect(carol);
    // The machine is the one the old key made: the key moved into the worker.
    expect(await carol.locator("dd", { hasText: "nodekey:" }).first().innerText()).toBe(
      encodeKey("nodekey", publicKey),
    );
    expect(await carol.evaluate(() => localStorage.getItem("trellis.node.privkey"))).toBeNull();
    // Nothing the worker told the page carries it, in hex or as bytes.
    const messages = await carol.evaluate(
      () => (window as unknown as { portMessages: string[] }).portMessages,
    );
    expect(messages.length).toBeGreaterThan(3);
    const hex = Buffer.from(privateKey).toString("hex");
    const bytes = [...privateKey].join(",");
    for (const m of messages) {
      expect(m).not.toContain(hex);
      expect(m).not.toContain(bytes);
    }
    // What IndexedDB holds is sealed, under a wrapping key the page cannot export.
    const stored = await carol.evaluate(async () => {
      const db = await new Promise<IDBDatabase>((resolve, reject) => {
        const open = indexedDB.open("trellis-node");
        open.onsuccess = () => resolve(open.result);
        open.onerror = () => reject(open.error);
      });
      const get = (key: string) =>
        new Promise<unknown>((resolve, reject) => {
          const r = db.transaction("keys").objectStore("keys").get(key);
          r.onsuccess = () => resolve(r.result);
          r.onerror = () => reject(r.error);
        });
      const wrap = (await get("wrapping-key")) as CryptoKey;
      const records: string[] = [];
      const all = await new Promise<unknown[]>((resolve) => {
        const r = db.transaction("keys").objectStore("keys").getAll();
        r.onsuccess = () => resolve(r.result);
      });
      for (const v of all) {
        if (v && typeof v === "object" && "data" in v)
          records.push([...new Uint8Array((v as { data: ArrayBuffer }).data)].join(","));
      }
      const exported = await crypto.subtle.exportKey("raw", wrap).then(
        () => "exported",
        (e: Error) => e.name,
      );
      return { extractable: wrap.extractable, exported, records };
    });
    expect(stored.extractable).toBe(false);
    expect(stored.exported).toBe("InvalidAccessError");
    expect(stored.records).toHaveLength(1);
    expect(stored.records[0]).not.toContain(bytes);
  });

  it("runs one node per browser across two versions of the app: the newest tab's worker takes it over, the other says to reload, and a stop made there still stops it", async () => {
    const nodeKey = (page: Page) => page.locator("dd", { hasText: "nodekey:" }).first().innerText();
    const key = await nodeKey(alice);
    // A newer build of the app loads its worker from another script URL, so the same profile
    // gets a second SharedWorker; a worker of another name is one too, running this build's code.
    const newer = await alice.context().newPage();
    try {
      await newer.addInitScript(() => {
        const Shared = window.SharedWorker;
        window.SharedWorker = class extends Shared {
          constructor(url: string | URL, options?: string | WorkerOptions) {
            super(url, { ...(typeof options === "object" ? options : {}), name: "a newer version" });
          }
        };
      });
      await newer.goto(`${net.url}/connect`);
      // It joins by itself (this browser joined and was not disconnected), as the same machine,
      // taking the node's Web Lock: the old worker stops and its page says what to do.
      await newer.locator("[data-testid=connect][data-phase=connected]").waitFor({ timeout: 30_000 });
      expect(await nodeKey(newer)).toBe(key);
      await alice.getByTestId("connect-ended").waitFor({ timeout: 15_000 });
      expect(await alice.getByTestId("connect-ended").innerText()).toMatch(
        /runs in a newer version of Trellis, open in another tab\. Reload this page/,
      );
      // It offers a reload, not a Connect that would take the node back into the old version.
      expect(await alice.getByTestId("connect-button").count()).toBe(0);
      const row = newer.locator("tr", { has: newer.getByText("server", { exact: true }) });
      await row.getByTestId("connect-ping").click();
      await expect
        .poll(() => row.getByTestId("connect-ping-result").innerText(), { timeout: 15_000 })
        .toMatch(/^\d+ ms via (relay|direct path)$/);
      // One machine, with one map stream: the server sees it online, the peer reaches it.
      const mine = await api(net.url, net.admin, "GET", "/api/v1/machines?q=alice%40example.com");
      const tabs = (mine.body.items as { os: string; online: boolean }[]).filter((m) => m.os === "browser");
      expect(tabs).toHaveLength(1);
      expect(tabs[0]!.online).toBe(true);
      await shot(alice, "browser-node-newer-version");

      // An app page opened in the old tab (a navigation within it, no page load: still the old
      // worker) does not take the node back either; it offers the reload too.
      const push = (path: string) =>
        alice.evaluate(
          (p) => (window as unknown as { next: { router: { push(p: string): void } } }).next.router.push(p),
          path,
        );
      await push("/http/server?port=7");
      const stopped = alice.getByTestId("http-stopped");
      await stopped.waitFor({ timeout: 15_000 });
      expect(await stopped.innerText()).toMatch(/runs in a newer version of Trellis, open in another tab/);
      expect(await stopped.getByRole("button").innerText()).toBe("Reload this page");
      await new Promise((r) => setTimeout(r, 2000));
      expect(await newer.getByTestId("connect").getAttribute("data-phase")).toBe("connected");
      await push("/connect");

      // Sign out in the old tab stops the node first (what the button does before signing out):
      // it stops where the node runs now, in the newer worker, not only in the old one.
      await alice.evaluate(() =>
        (window as unknown as { trellisNode: BrowserNodeClient }).trellisNode.stop(),
      );
      await newer.locator("[data-testid=connect][data-phase=idle]").waitFor({ timeout: 15_000 });
      expect(await newer.getByTestId("connect-button").count()).toBe(1);

      // The old page, reloaded, joins again when asked, as the same machine; the newer worker,
      // stopped, stays so.
      await alice.getByTestId("connect-reload").click();
      await connect(alice);
      expect(await nodeKey(alice)).toBe(key);
      expect(await newer.getByTestId("connect").getAttribute("data-phase")).toBe("idle");
    } finally {
      await newer.close();
      // The next test needs alice's tab running the node, even when this one failed midway.
      if ((await alice.getByTestId("connect").getAttribute("data-phase")) !== "connected") {
        await alice.goto(`${net.url}/connect`);
        // It joins by itself if the browser still wants to run; else it is asked to.
        const joined = alice.locator("[data-testid=connect][data-phase=connected]");
        if (
          !(await joined.waitFor({ timeout: 5000 }).then(
            () => true,
            () => false,
          ))
        )
          await connect(alice);
      }
    }
  });

  it("is an ephemeral machine that leaving removes", async () => {
    const mine = await api(net.url, net.admin, "GET", "/api/v1/machines?q=alice%40example.com");
    const tab = (
      mine.body.items as { id: string; os: string; user: { email: string } | null; ephemeral: boolean }[]
    ).find((m) => m.os === "browser" && m.user?.email === "alice@example.com")!;
    expect(tab.ephemeral).toBe(true);
    await alice.getByTestId("connect-leave").click();
    await alice.getByTestId("connect-ended").waitFor({ timeout: 15_000 });
    expect(await alice.getByTestId("connect-ended").innerText()).toMatch(/left the tailnet/);
    expect((await api(net.url, net.admin, "GET", `/api/v1/machines/${tab.id}`)).status).toBe(404);
    await until("the server forgets alice", () => !server.netmap?.peers.some((p) => p.id === tab.id));
  });
});
