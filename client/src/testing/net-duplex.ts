// Node TCP sockets as the web-stream connections the browser's node hands out
// (engine/sockets.ts): tests of the apps/ protocol clients dial real servers
// on 127.0.0.1 through this. Closing the writable half-closes (FIN), like
// TcpConnection; cancelling the readable or aborting the writable resets.
import { connect, type Socket } from "node:net";
import type { Dial, Duplex } from "../apps/http";

export function socketDuplex(socket: Socket): Duplex {
  const readable = new ReadableStream<Uint8Array>(
    {
      start(c) {
        socket.on("data", (b: Buffer) => {
          c.enqueue(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
          // Back-pressure, as TcpConnection does: stop reading while the reader lags.
          if ((c.desiredSize ?? 1) <= 0) socket.pause();
        });
        socket.on("end", () => {
          try {
            c.close();
          } catch {
            // cancelled by the reader already
          }
        });
        socket.on("error", (e) => {
          try {
            c.error(e);
          } catch {
            // cancelled by the reader already
          }
        });
        socket.on("close", () => {
          try {
            c.close();
          } catch {
            // ended or errored already
          }
        });
      },
      pull() {
        socket.resume();
      },
      cancel() {
        socket.destroy();
      },
    },
    { highWaterMark: 64 * 1024, size: (b) => b.byteLength },
  );
  const writable = new WritableStream<Uint8Array>({
    write: (chunk) =>
      new Promise<void>((resolve, reject) => {
        if (socket.destroyed) return reject(new Error("socket closed"));
        socket.write(chunk, (e) => (e ? reject(e) : resolve()));
      }),
    close: () =>
      new Promise<void>((resolve) => {
        // end()'s callback never comes for a socket already destroyed (the reader cancelled).
        if (socket.destroyed) return resolve();
        socket.once("close", () => resolve());
        socket.end(() => resolve());
      }),
    abort: () => {
      socket.destroy();
    },
  });
  return { readable, writable };
}

/** A Dial to host:port that counts its connections. */
export function netDial(port: number, host = "127.0.0.1"): Dial & { dials: number } {
  const dial = Object.assign(
    () =>
      new Promise<Duplex>((resolve, reject) => {
        dial.dials++;
        const s = connect(port, host);
        s.once("connect", () => {
          s.off("error", reject);
          resolve(socketDuplex(s));
        });
        s.once("error", reject);
      }),
    { dials: 0 },
  );
  return dial;
}
