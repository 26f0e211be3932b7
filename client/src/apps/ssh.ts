// SSH from the page to a tailnet host: the SSH protocol runs in the page
// (Microsoft's dev-tunnels-ssh: WebCrypto in browsers, node:crypto in Node)
// over a TCP stream of the node's userspace stack, so the Trellis server
// and relay carry only WireGuard packets. This module owns the session: it
// checks the host key through the caller (trust on first use lives in
// known-hosts.ts), authenticates by password or key, and opens a shell on a
// pseudo-terminal whose size follows the terminal. Browser-safe.
import { Buffer } from "buffer";
import {
  BaseStream,
  ChannelRequestMessage,
  SshAuthenticationType,
  type SshChannel,
  SshClientSession,
  SshDisconnectReason,
  SshSessionConfiguration,
  type KeyPair,
  type SshDataWriter,
} from "@microsoft/dev-tunnels-ssh";
import type { Duplex } from "./duplex";

export type SshErrorCode =
  /** The caller did not accept the host's key (unknown and declined, or changed). */
  | "host_key_rejected"
  /** No algorithm both sides support (e.g. a server restricted to ed25519/curve25519/chacha20). */
  | "negotiation_failed"
  | "auth_failed"
  /** The server refused a shell or a terminal. */
  | "channel_refused"
  | "closed";

export class SshError extends Error {
  override readonly name = "SshError";
  constructor(
    message: string,
    readonly code: SshErrorCode,
  ) {
    super(message);
  }
}

/** A server's host key as people compare it: OpenSSH's `SHA256:…` fingerprint. */
export interface HostKey {
  /** e.g. `ecdsa-sha2-nistp256`, `rsa-sha2-512`. */
  algorithm: string;
  /** `SHA256:` and unpadded base64, as `ssh-keygen -lf` prints it. */
  fingerprint: string;
  /** The public key blob, base64 (for pinning). */
  key: string;
}

export type SshAuth = { password: string } | { keyPair: KeyPair };

export interface SshShellOptions {
  duplex: Duplex;
  username: string;
  auth: SshAuth;
  /** Decide whether to trust the host; false stops the connection before authenticating. */
  verifyHostKey(key: HostKey): Promise<boolean>;
  cols: number;
  rows: number;
  /** TERM on the server. */
  term?: string;
}

export interface SshExit {
  /** The remote command's exit status, when it sent one. */
  status?: number;
  signal?: string;
  /** Why the session ended, when not by the shell's own exit. */
  reason?: string;
}

/** Output kept for a listener that has not arrived yet. */
const MAX_EARLY_BYTES = 256 * 1024;

/** A web stream pair as the library's byte stream. */
class WebStream extends BaseStream {
  private readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;

  constructor(duplex: Duplex) {
    super();
    this.writer = duplex.writable.getWriter();
    this.reader = duplex.readable.getReader();
    void this.pump();
  }

  private async pump(): Promise<void> {
    try {
      for (;;) {
        const r = await this.reader.read();
        if (r.done) return this.onEnd();
        this.onData(Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength));
      }
    } catch (e) {
      this.onError(e instanceof Error ? e : new Error(String(e)));
    }
  }

  async write(data: Buffer): Promise<void> {
    if (this.disposed) throw new SshError("the connection is closed", "closed");
    // The library reuses its buffers: the stream gets a copy it may keep.
    await this.writer.write(Uint8Array.from(data));
  }

  async close(error?: Error): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await (error ? this.writer.abort(error) : this.writer.close()).catch(() => undefined);
    await this.reader.cancel().catch(() => undefined);
    this.fireOnClose(error);
  }
}

/** RFC 4254 §6.2: ask for a pseudo-terminal. */
class PtyRequest extends ChannelRequestMessage {
  constructor(
    private readonly term: string,
    private readonly cols: number,
    private readonly rows: number,
  ) {
    super("pty-req", true);
  }
  protected override onWrite(writer: SshDataWriter): void {
    super.onWrite(writer);
    writer.writeString(this.term, "ascii");
    writer.writeUInt32(this.cols);
    writer.writeUInt32(this.rows);
    writer.writeUInt32(0);
    writer.writeUInt32(0);
    // Terminal modes: none but the end marker (TTY_OP_END), the server's defaults apply.
    writer.writeBinary(Buffer.from([0]));
  }
}

/** RFC 4254 §6.7: the terminal changed size. */
class WindowChange extends ChannelRequestMessage {
  constructor(
    private readonly cols: number,
    private readonly rows: number,
  ) {
    super("window-change", false);
  }
  protected override onWrite(writer: SshDataWriter): void {
    super.onWrite(writer);
    writer.writeUInt32(this.cols);
    writer.writeUInt32(this.rows);
    writer.writeUInt32(0);
    writer.writeUInt32(0);
  }
}

async function sha256Fingerprint(blob: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", blob as Uint8Array<ArrayBuffer>));
  return "SHA256:" + Buffer.from(digest).toString("base64").replace(/=+$/, "");
}

/** An interactive shell on a tailnet host. */
export class SshShell {
  private readonly dataListeners = new Set<(d: Uint8Array) => void>();
  private exitInfo: SshExit | null = null;
  private readonly exitListeners = new Set<(e: SshExit) => void>();
  private pendingExit: SshExit = {};
  /** Output held until the first listener arrives (null once one has). */
  private early: Uint8Array[] | null = [];
  private earlyBytes = 0;

  private constructor(
    private readonly session: SshClientSession,
    private readonly channel: SshChannel,
    /** The host key this session was opened with. */
    readonly hostKey: HostKey,
  ) {
    channel.onDataReceived((data) => {
      this.deliver(Uint8Array.from(data));
      channel.adjustWindow(data.length);
    });
    channel.onExtendedDataReceived((e) => {
      this.deliver(Uint8Array.from(e.data));
      channel.adjustWindow(e.data.length);
    });
    // The library keeps the exit-status/exit-signal requests for the close event.
    channel.onClosed((e) => {
      if (e.exitStatus !== undefined) this.pendingExit.status = e.exitStatus;
      if (e.exitSignal) this.pendingExit.signal = e.exitSignal;
      this.finish({ ...this.pendingExit });
    });
    session.onClosed((e) => {
      const reason =
        e.reason === SshDisconnectReason.none || e.reason === SshDisconnectReason.byApplication
          ? undefined
          : e.message || e.error?.message || `disconnected (${SshDisconnectReason[e.reason] ?? e.reason})`;
      this.finish({ ...this.pendingExit, ...(reason ? { reason } : {}) });
    });
  }

  /** Connect, check the host key, authenticate and start a shell on a terminal of `cols`×`rows`. */
  static async open(opts: SshShellOptions): Promise<SshShell> {
    const config = new SshSessionConfiguration();
    const session = new SshClientSession(config);
    let hostKey: HostKey | null = null;
    let hostKeyRejected = false;
    session.onAuthenticating((e) => {
      if (e.authenticationType !== SshAuthenticationType.serverPublicKey || !e.publicKey) return;
      const pk = e.publicKey;
      e.authenticationPromise = (async () => {
        const blob = await pk.getPublicKeyBytes();
        if (!blob) return null;
        hostKey = {
          algorithm: pk.keyAlgorithmName,
          fingerprint: await sha256Fingerprint(blob),
          key: Buffer.from(blob).toString("base64"),
        };
        if (await opts.verifyHostKey(hostKey)) return {};
        hostKeyRejected = true;
        return null;
      })();
    });
    const stream = new WebStream(opts.duplex);
    try {
      try {
        await session.connect(stream);
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        throw /algorithm|negotiat/i.test(message)
          ? new SshError(
              `the server and this browser share no SSH algorithm (${message}); the browser supports ECDH (NIST curves), ECDSA and RSA host keys and AES-GCM/CTR`,
              "negotiation_failed",
            )
          : new SshError(`SSH connection failed: ${message}`, "closed");
      }
      const serverOk = await session.authenticateServer().catch(() => false);
      if (!serverOk || hostKeyRejected) {
        throw new SshError(
          hostKeyRejected
            ? "the host key was not accepted; the connection was stopped before signing in"
            : "the server could not prove it holds its host key",
          "host_key_rejected",
        );
      }
      const clientOk = await session.authenticateClient(
        "password" in opts.auth
          ? { username: opts.username, password: opts.auth.password }
          : { username: opts.username, publicKeys: [opts.auth.keyPair] },
      );
      if (!clientOk) {
        throw new SshError(
          "password" in opts.auth
            ? `the server refused user ${opts.username} with that password`
            : `the server refused user ${opts.username} with this browser's key (is its public key in ~/.ssh/authorized_keys?)`,
          "auth_failed",
        );
      }
      const channel = await session.openChannel();
      const shell = new SshShell(session, channel, hostKey!);
      if (!(await channel.request(new PtyRequest(opts.term ?? "xterm-256color", opts.cols, opts.rows)))) {
        throw new SshError("the server refused a terminal", "channel_refused");
      }
      if (!(await channel.request(new ChannelRequestMessage("shell", true)))) {
        throw new SshError("the server refused a shell", "channel_refused");
      }
      return shell;
    } catch (e) {
      await session.close(SshDisconnectReason.byApplication).catch(() => undefined);
      session.dispose();
      await stream.close().catch(() => undefined);
      throw e;
    }
  }

  /**
   * Output of the shell (stdout and stderr as the terminal shows them). What
   * arrived before the first listener (the prompt, while the terminal loads)
   * is handed to it first.
   */
  onData(fn: (data: Uint8Array) => void): () => void {
    this.dataListeners.add(fn);
    const early = this.early;
    this.early = null;
    for (const d of early ?? []) fn(d);
    return () => this.dataListeners.delete(fn);
  }

  private deliver(d: Uint8Array): void {
    if (this.early) {
      // Bounded: a shell that floods before anyone looks keeps its latest output only.
      this.earlyBytes += d.length;
      this.early.push(d);
      while (this.earlyBytes > MAX_EARLY_BYTES && this.early.length > 1)
        this.earlyBytes -= this.early.shift()!.length;
      return;
    }
    for (const fn of this.dataListeners) fn(d);
  }

  /** Called once, when the shell exits or the session ends. */
  onExit(fn: (e: SshExit) => void): () => void {
    if (this.exitInfo) fn(this.exitInfo);
    else this.exitListeners.add(fn);
    return () => this.exitListeners.delete(fn);
  }

  get exited(): SshExit | null {
    return this.exitInfo;
  }

  private finish(e: SshExit): void {
    if (this.exitInfo) return;
    this.exitInfo = e;
    for (const fn of this.exitListeners) fn(e);
    this.exitListeners.clear();
    this.session.dispose();
  }

  /** Keystrokes and pastes. */
  async write(data: Uint8Array | string): Promise<void> {
    if (this.exitInfo) return;
    await this.channel.send(typeof data === "string" ? Buffer.from(data, "utf8") : Buffer.from(data));
  }

  /** The terminal's new size (the server sends the shell SIGWINCH). */
  async resize(cols: number, rows: number): Promise<void> {
    if (this.exitInfo) return;
    await this.channel.request(new WindowChange(cols, rows));
  }

  /** End the session (`reason` is what the user is told, e.g. that the policy no longer allows it). */
  async close(reason = "closed"): Promise<void> {
    if (this.exitInfo) return;
    this.finish({ reason });
    await this.session.close(SshDisconnectReason.byApplication).catch(() => undefined);
  }
}
