// Connections of the userspace stack as web streams: a TCP connection is a
// ReadableStream and a WritableStream (the same in browsers and Node), with
// back-pressure both ways — a reader that does not keep up pauses the
// connection (its TCP window closes), and a writer waits for the stack's
// send buffer. Browser-safe.

/** What a connection needs of the engine. */
export interface TcpHost {
  /** Queue bytes; returns how many fit. */
  send(handle: number, data: Uint8Array): number;
  pause(handle: number, paused: boolean): void;
  close(handle: number): void;
  abort(handle: number): void;
  /** Run the engine soon (what was queued goes out). */
  kick(): void;
}

export class ConnectionError extends Error {
  override readonly name = "ConnectionError";
  constructor(
    message: string,
    /** `refused` (reset before it was established), `reset`, `timeout`, `closed`. */
    readonly code: "refused" | "reset" | "timeout" | "closed" | "aborted",
  ) {
    super(message);
  }
}

/** Bytes a reader may leave unread before the connection pauses. */
const READ_HIGH_WATER = 512 * 1024;

/** One TCP connection through the tailnet. */
export class TcpConnection {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private paused = false;
  private closed = false;
  private readonly writes: { data: Uint8Array; resolve: () => void; reject: (e: Error) => void }[] = [];
  private closeAfterWrites: (() => void) | null = null;
  /** The stack has released the handle (its end is reported later in the same batch): leave it alone. */
  private released = false;
  /** Why the stack stopped taking writes while the connection is still open (reset while paused). */
  private sendFailed: ConnectionError | null = null;

  constructor(
    readonly handle: number,
    private readonly host: TcpHost,
    /** Who is at the other end, for people. */
    readonly remote: { address: string; port: number },
  ) {
    this.readable = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          this.controller = c;
        },
        pull: () => {
          if (this.paused && !this.closed && !this.released) {
            this.paused = false;
            this.host.pause(this.handle, false);
            this.host.kick();
          }
        },
        cancel: () => this.abort(),
      },
      { highWaterMark: READ_HIGH_WATER, size: (chunk) => chunk.byteLength },
    );
    this.writable = new WritableStream<Uint8Array>({
      write: (chunk) =>
        new Promise<void>((resolve, reject) => {
          if (this.closed) return reject(new ConnectionError("the connection is closed", "closed"));
          if (this.sendFailed) return reject(this.sendFailed);
          this.writes.push({ data: chunk, resolve, reject });
          this.flush();
          this.host.kick();
        }),
      close: () =>
        new Promise<void>((resolve) => {
          this.closeAfterWrites = () => {
            if (!this.closed && !this.released) this.host.close(this.handle);
            resolve();
          };
          this.flush();
          this.host.kick();
        }),
      abort: () => this.abort(),
    });
  }

  /**
   * The stack released this connection's handle in the batch being handled:
   * its last data comes first and `closedBy` after, and nothing may be asked
   * of the handle in between.
   */
  releasedByStack(): void {
    this.released = true;
  }

  /** Bytes that arrived. */
  data(bytes: Uint8Array): void {
    if (this.closed) return;
    try {
      this.controller.enqueue(bytes.slice());
    } catch {
      return;
    }
    if ((this.controller.desiredSize ?? 1) <= 0 && !this.paused && !this.released) {
      this.paused = true;
      this.host.pause(this.handle, true);
    }
  }

  /** The peer finished sending. */
  eof(): void {
    try {
      this.controller.close();
    } catch {
      // the reader cancelled
    }
  }

  /** The connection is gone (the engine released its handle). */
  closedBy(reset: boolean, wasConnected: boolean): void {
    if (this.closed) return;
    this.closed = true;
    const err = reset
      ? new ConnectionError(
          wasConnected ? "the connection was reset" : "the connection was refused or timed out",
          wasConnected ? "reset" : "refused",
        )
      : new ConnectionError("the connection is closed", "closed");
    try {
      if (reset) this.controller.error(err);
      else this.controller.close();
    } catch {
      // already closed or errored
    }
    for (const w of this.writes.splice(0)) w.reject(err);
    this.closeAfterWrites?.();
    this.closeAfterWrites = null;
  }

  /** Hand queued writes to the stack as its send buffer frees. */
  flush(): void {
    while (this.writes.length > 0 && !this.closed && !this.released) {
      const w = this.writes[0]!;
      let n: number;
      try {
        n = this.host.send(this.handle, w.data);
      } catch (err) {
        // Reset while its reader was behind: the handle stays until the data is read, but
        // takes no more writes. The writer is told; the reader still gets what arrived.
        this.sendFailed = new ConnectionError(
          `the connection was reset (${err instanceof Error ? err.message : String(err)})`,
          "reset",
        );
        for (const q of this.writes.splice(0)) q.reject(this.sendFailed);
        break;
      }
      if (n < w.data.length) {
        w.data = w.data.subarray(n);
        return;
      }
      this.writes.shift();
      w.resolve();
    }
    if (this.writes.length === 0 && this.closeAfterWrites) {
      const done = this.closeAfterWrites;
      this.closeAfterWrites = null;
      done();
    }
  }

  /** Whether writes wait for room. */
  get waiting(): boolean {
    return this.writes.length > 0 || this.closeAfterWrites !== null;
  }

  /** Finish sending; the connection closes when the peer finishes too. */
  async close(): Promise<void> {
    await this.writable.close().catch(() => undefined);
  }

  /** Reset the connection now. */
  abort(): void {
    if (this.closed) return;
    if (!this.released) this.host.abort(this.handle);
    this.closedBy(true, true);
    this.host.kick();
  }
}
