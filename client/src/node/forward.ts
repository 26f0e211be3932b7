// A tailnet TCP connection joined to a Node socket, both ways, with the
// streams' back-pressure: what a gateway's userspace port forwarding does
// (and the tests' office, which stands in for a gateway).
import type { Socket } from "node:net";
import { Duplex } from "node:stream";

/** The part of a tailnet connection this needs (TcpConnection has it). */
export interface ForwardedConnection {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
  abort(): void;
}

/**
 * Carry `c` to `socket` and back. A socket that fails to connect, or a
 * reset while reading from it, resets the tailnet side (`ended` says why).
 * The socket closing its end after an answer does not: the answer may
 * still be on its way, and the tailnet side then closes in order.
 */
export function forwardToSocket(
  c: ForwardedConnection,
  socket: Socket,
  ended?: (err: unknown) => void,
): void {
  const local = Duplex.toWeb(socket) as unknown as {
    readable: ReadableStream<Uint8Array>;
    writable: WritableStream<Uint8Array>;
  };
  let connected = !socket.connecting;
  socket.once("connect", () => (connected = true));
  const reset = (err: unknown) => {
    ended?.(err);
    c.abort();
    socket.destroy();
  };
  // After connecting, a socket's errors also end its readable: handled once, below.
  socket.on("error", (err) => {
    if (!connected) reset(err);
  });
  // preventCancel: the socket refusing more bytes must not reset what is still coming back.
  c.readable.pipeTo(local.writable, { preventCancel: true }).catch((err: unknown) => ended?.(err));
  local.readable.pipeTo(c.writable).catch(reset);
}
