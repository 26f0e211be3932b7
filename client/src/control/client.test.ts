// The control client against a scripted server (an injected fetch): what it
// sends, how it reads answers and map streams, and how its watcher recovers.
// Its interop with the real server is proven by control/'s and e2e's tests,
// which all talk to the server through it.
import { describe, expect, it } from "vitest";
import { x25519 } from "@noble/curves/ed25519.js";
import { encodeKey, parseNodeAuth, type FullMap, type MapMessage } from "@trellis/proto";
import { fullMap, testPeer } from "../testing/maps";
import { ControlClient, ControlRequestError } from "./client";
import { keyHolder } from "./signer";
import type { WatchState } from "./watch";

const controlKey = encodeKey("controlkey", x25519.getPublicKey(x25519.utils.randomSecretKey()));

type Handler = (req: Request) => Response | Promise<Response>;

/** A client whose requests go to `handler`, which sees each one as a Request. */
function clientWith(handler: Handler) {
  const seen: Request[] = [];
  const fetchFn = (async (input: string | URL | Request, init?: RequestInit) => {
    const req = new Request(input, init);
    seen.push(req.clone());
    if (new URL(req.url).pathname === "/api/v1/key") return Response.json({ publicKey: controlKey });
    return handler(req);
  }) as typeof fetch;
  const client = new ControlClient({
    baseUrl: "https://vpn.example.com",
    key: keyHolder(x25519.utils.randomSecretKey()),
    fetch: fetchFn,
  });
  return { client, seen };
}

/** An SSE response whose body is `text` (the stream ends after it unless `hold`). */
function sse(text: string, hold = false): Response {
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(new TextEncoder().encode(text));
      if (!hold) c.close();
    },
  });
  return new Response(body, { headers: { "content-type": "text/event-stream" } });
}

const event = (m: MapMessage, eol = "\n") =>
  `id: ${m.seq}${eol}event: ${m.type}${eol}data: ${JSON.stringify(m)}${eol}${eol}`;

describe("ControlClient", () => {
  it("signs each call with the node key over the exact path and body", async () => {
    const { client, seen } = clientWith(() => Response.json({ changed: true }));
    expect(await client.updateEndpoints({ endpoints: ["192.0.2.1:41641"] })).toEqual({ changed: true });
    const req = seen.at(-1)!;
    expect(req.method).toBe("POST");
    expect(new URL(req.url).pathname).toBe("/api/v1/endpoints");
    expect(await req.text()).toBe('{"endpoints":["192.0.2.1:41641"]}');
    expect(parseNodeAuth(req.headers.get("authorization"))?.key).toBe(client.nodeKey);
    // The control key is fetched once.
    await client.updateEndpoints({ endpoints: [] });
    expect(seen.filter((r) => r.url.endsWith("/api/v1/key"))).toHaveLength(1);
  });

  it("reports the server's error code, message and issues; an answer of the wrong shape is an error too", async () => {
    const refusing = clientWith(() =>
      Response.json(
        { error: "invalid_request", message: "bad", issues: [{ path: "hostname", message: "empty" }] },
        { status: 400 },
      ),
    );
    const err = await refusing.client.register({ hostname: "x" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ControlRequestError);
    expect(err).toMatchObject({
      status: 400,
      code: "invalid_request",
      refused: true,
      issues: [{ path: "hostname" }],
    });
    const odd = clientWith(() => Response.json({ changed: "yes" }));
    await expect(odd.client.updateEndpoints({ endpoints: [] })).rejects.toMatchObject({
      code: "bad_response",
    });
    const gateway = clientWith(() => new Response("<html>", { status: 502 }));
    await expect(gateway.client.logout()).rejects.toMatchObject({
      status: 502,
      code: "http_502",
      refused: false,
    });
  });

  it("reads a map stream with CRLF line ends, applying deltas in order", async () => {
    const full = fullMap(0, [testPeer("a", "alpha")]);
    const { client } = clientWith(() =>
      sse(
        event(full, "\r\n") +
          event({ type: "delta", seq: 1, policyVersion: 5 }, "\r\n") +
          ": heartbeat\r\n\r\n",
      ),
    );
    const maps: FullMap[] = [];
    for await (const ev of await client.openMap()) if (ev.type === "map") maps.push(ev.map);
    expect(maps.map((m) => [m.seq, m.policyVersion, m.peers[0]?.name])).toEqual([
      [0, 0, "alpha"],
      [1, 5, "alpha"],
    ]);
  });

  it("watches the map: a lost message (seq gap) is resynced at once from a new full map", async () => {
    let connection = 0;
    const { client } = clientWith((req) => {
      if (new URL(req.url).pathname !== "/api/v1/map") return Response.json({}, { status: 404 });
      connection++;
      if (connection === 1) {
        // seq 2 never arrives.
        return sse(
          event(fullMap(0)) +
            event({ type: "delta", seq: 1, policyVersion: 1 }) +
            event({ type: "delta", seq: 3, policyVersion: 3 }),
          true,
        );
      }
      return sse(event({ ...fullMap(0), policyVersion: 3 }), true);
    });
    const states: WatchState["phase"][] = [];
    const versions: number[] = [];
    const watcher = client.watchMap(
      {
        map: (m) => {
          versions.push(m.policyVersion);
          if (m.policyVersion === 3) watcher.stop();
        },
        state: (s) => states.push(s.phase),
      },
      { random: () => 0.5 },
    );
    expect((await watcher.done).phase).toBe("stopped");
    expect(versions).toEqual([0, 1, 3]);
    expect(states).toEqual(["connecting", "connected", "resyncing", "connecting", "connected", "stopped"]);
    expect(connection).toBe(2);
  });

  it("watches the map: retries a dropped stream with backoff, stops on the server's end", async () => {
    let connection = 0;
    const { client } = clientWith(() => {
      connection++;
      if (connection === 1) return new Response("", { status: 503 });
      return sse(event(fullMap(0)) + 'event: end\ndata: {"type":"end","reason":"deleted"}\n\n');
    });
    const states: WatchState[] = [];
    const watcher = client.watchMap(
      { state: (s) => states.push(s) },
      { random: () => 0.5, minBackoffMs: 10 },
    );
    expect(await watcher.done).toEqual({ phase: "ended", reason: "deleted" });
    expect(states.find((s) => s.phase === "retrying")).toMatchObject({ attempt: 1, retryInMs: 10 });
  });

  it("watches the map: gives up at once on a refusal retrying cannot fix", async () => {
    const { client } = clientWith(() =>
      Response.json({ error: "unknown_node", message: "register first" }, { status: 401 }),
    );
    const last = await client.watchMap({}, { random: () => 0.5 }).done;
    expect(last.phase).toBe("failed");
    expect(last.phase === "failed" && last.error).toMatchObject({ code: "unknown_node" });
  });
});
