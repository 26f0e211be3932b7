// A byte stream both ways, as the node hands out TCP connections (the
// engine's TcpConnection, or one transferred from the browser node's worker)
// and as every app protocol here (SSH, HTTP, WebSocket, VNC) consumes them.
export interface Duplex {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
}
