// Child process of the relay benchmark: runs either the relay (every limit at
// its default) or the baseline, a plain `ws` echo server, and answers
// {cmd:"rss"} with its resident memory.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer } from "ws";
import { startTestRelay } from "../src/testing/harness";

const kind = process.argv[2];

async function main(): Promise<number> {
  if (kind === "relay") {
    const r = await startTestRelay();
    return r.port;
  }
  const server = createServer();
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  wss.on("connection", (ws) => {
    ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return (server.address() as AddressInfo).port;
}

main().then(
  (port) => {
    process.send!({ port });
    process.on("message", (m: { cmd: string }) => {
      if (m.cmd === "rss") {
        global.gc?.();
        process.send!({ rss: process.memoryUsage().rss });
      }
    });
  },
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
