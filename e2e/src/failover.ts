// A TCP front for replicas, as a load balancer with health checks behaves
// for this purpose: each new connection goes to the first replica that
// accepts it, so when one dies its clients reconnect to the next. Loopback
// only; the test that starts it closes it.
import { createServer, connect, type AddressInfo, type Socket } from "node:net";

export interface FailoverProxy {
  port: number;
  url: string;
  close(): Promise<void>;
}

export async function startFailoverProxy(ports: number[]): Promise<FailoverProxy> {
  const open = new Set<Socket>();
  const server = createServer((client) => {
    open.add(client);
    client.on("close", () => open.delete(client));
    client.pause();
    const attempt = (i: number) => {
      if (i >= ports.length) {
        client.destroy();
        return;
      }
      const upstream = connect(ports[i]!, "127.0.0.1");
      upstream.once("error", () => attempt(i + 1));
      upstream.once("connect", () => {
        upstream.removeAllListeners("error");
        open.add(upstream);
        upstream.on("close", () => open.delete(upstream));
        upstream.on("error", () => client.destroy());
        client.on("error", () => upstream.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
    };
    attempt(0);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
