// A direct path to one peer over a WebRTC data channel, on the standard
// RTCPeerConnection API: the browser's own on a page, node-datachannel's
// polyfill in Node — one implementation for both. The channel is unordered
// with no retransmissions (`ordered: false, maxRetransmits: 0`): it carries
// WireGuard datagrams, whose TCP inside does its own recovery, and a
// reliable ordered channel would stall every flow behind one lost packet.
// Browser-safe.
import type { RtcSignal } from "./signalling";

/** What the engine hears from a direct link. */
export interface DirectLinkEvents {
  /** A signal to seal and send to the peer. */
  signal(s: RtcSignal): void;
  /** The data channel is open. */
  open(): void;
  message(data: Uint8Array): void;
  /** The link is gone (closed, failed); it will not open again. */
  close(reason: string): void;
}

/** One attempt at a direct path to one peer. */
export interface DirectLink {
  /** A signal from the peer, opened and validated. */
  signal(s: RtcSignal): void;
  /** Send one datagram; false when the channel cannot take it now (dropped). */
  send(data: Uint8Array): boolean;
  close(): void;
}

export interface DirectLinkOptions {
  /** This side creates the data channel and the offer. */
  offerer: boolean;
  session: string;
  iceServers: { urls: string | string[] }[];
}

/** Makes direct links: on a page or in Node, over RTCPeerConnection; in a worker, through a page. */
export type DirectLinkFactory = (opts: DirectLinkOptions, events: DirectLinkEvents) => DirectLink;

/** The parts of RTCPeerConnection this uses (the browser's and node-datachannel's polyfill both fit). */
export interface PeerConnectionLike {
  createDataChannel(label: string, init: { ordered: boolean; maxRetransmits: number }): DataChannelLike;
  createOffer(): Promise<{ type: string; sdp?: string }>;
  createAnswer(): Promise<{ type: string; sdp?: string }>;
  setLocalDescription(d: { type: string; sdp?: string }): Promise<void>;
  setRemoteDescription(d: { type: "offer" | "answer"; sdp: string }): Promise<void>;
  addIceCandidate(c: {
    candidate: string;
    sdpMid: string | null;
    sdpMLineIndex: number | null;
  }): Promise<void>;
  readonly localDescription: { type: string; sdp: string } | null;
  readonly connectionState: string;
  onicecandidate:
    | ((e: {
        candidate: { candidate: string; sdpMid?: string | null; sdpMLineIndex?: number | null } | null;
      }) => void)
    | null;
  ondatachannel: ((e: { channel: DataChannelLike }) => void) | null;
  onconnectionstatechange: (() => void) | null;
  close(): void;
}

export interface DataChannelLike {
  binaryType: string;
  readonly readyState: string;
  readonly bufferedAmount: number;
  send(data: Uint8Array): void;
  close(): void;
  onopen: (() => void) | null;
  onclose: (() => void) | null;
  onerror: ((e: unknown) => void) | null;
  onmessage: ((e: { data: unknown }) => void) | null;
}

export type PeerConnectionClass = new (config: {
  iceServers: { urls: string | string[] }[];
}) => PeerConnectionLike;

/** Datagrams queued in the channel at most; beyond, sends are dropped (WireGuard's TCP recovers). */
export const MAX_BUFFERED = 1024 * 1024;
const LABEL = "trellis-wireguard";

/** A DirectLinkFactory over an RTCPeerConnection class. */
export function rtcLinks(PC: PeerConnectionClass): DirectLinkFactory {
  return (opts, events) => new RtcLink(PC, opts, events);
}

class RtcLink implements DirectLink {
  private readonly pc: PeerConnectionLike;
  private dc: DataChannelLike | null = null;
  private closed = false;
  private remoteSet = false;
  private readonly pendingCandidates: RtcSignal[] = [];

  constructor(
    PC: PeerConnectionClass,
    private readonly opts: DirectLinkOptions,
    private readonly events: DirectLinkEvents,
  ) {
    this.pc = new PC({ iceServers: opts.iceServers });
    this.pc.onicecandidate = (e) => {
      if (!e.candidate?.candidate) return;
      events.signal({
        kind: "candidate",
        session: opts.session,
        candidate: e.candidate.candidate,
        sdpMid: e.candidate.sdpMid ?? null,
        sdpMLineIndex: e.candidate.sdpMLineIndex ?? null,
      });
    };
    this.pc.onconnectionstatechange = () => {
      const s = this.pc.connectionState;
      if (s === "failed" || s === "closed") this.finish(`peer connection ${s}`);
    };
    if (opts.offerer) {
      this.attach(this.pc.createDataChannel(LABEL, { ordered: false, maxRetransmits: 0 }));
      void this.offer();
    } else {
      this.pc.ondatachannel = (e) => {
        if (!this.dc) this.attach(e.channel);
      };
    }
  }

  private async offer(): Promise<void> {
    try {
      await this.pc.setLocalDescription(await this.pc.createOffer());
      this.sendDescription("offer");
    } catch (err) {
      this.finish(`offer failed: ${String(err)}`);
    }
  }

  private sendDescription(type: "offer" | "answer"): void {
    const d = this.pc.localDescription;
    if (!d || this.closed) return;
    this.events.signal({ kind: "description", session: this.opts.session, type, sdp: d.sdp });
  }

  private attach(dc: DataChannelLike): void {
    this.dc = dc;
    dc.binaryType = "arraybuffer";
    dc.onopen = () => {
      if (!this.closed) this.events.open();
    };
    dc.onclose = () => this.finish("data channel closed");
    dc.onerror = () => this.finish("data channel failed");
    dc.onmessage = (e) => {
      const d = e.data;
      if (d instanceof ArrayBuffer) this.events.message(new Uint8Array(d));
      else if (ArrayBuffer.isView(d))
        this.events.message(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    };
  }

  signal(s: RtcSignal): void {
    if (this.closed || s.session !== this.opts.session) return;
    void this.apply(s).catch((err: unknown) => this.finish(`signalling failed: ${String(err)}`));
  }

  private async apply(s: RtcSignal): Promise<void> {
    switch (s.kind) {
      case "description":
        if (s.type === "offer" && this.opts.offerer) return;
        await this.pc.setRemoteDescription({ type: s.type, sdp: s.sdp });
        this.remoteSet = true;
        for (const c of this.pendingCandidates.splice(0)) await this.apply(c);
        if (s.type === "offer") {
          await this.pc.setLocalDescription(await this.pc.createAnswer());
          this.sendDescription("answer");
        }
        return;
      case "candidate":
        if (!this.remoteSet) {
          if (this.pendingCandidates.length < 64) this.pendingCandidates.push(s);
          return;
        }
        await this.pc.addIceCandidate({
          candidate: s.candidate,
          sdpMid: s.sdpMid,
          sdpMLineIndex: s.sdpMLineIndex,
        });
        return;
      case "bye":
        this.finish("closed by the peer");
        return;
      case "hello":
        return;
    }
  }

  send(data: Uint8Array): boolean {
    const dc = this.dc;
    if (this.closed || !dc || dc.readyState !== "open" || dc.bufferedAmount > MAX_BUFFERED) return false;
    try {
      dc.send(data);
      return true;
    } catch {
      return false;
    }
  }

  private finish(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.dc?.close();
      this.pc.close();
    } catch {
      // already closed
    }
    this.events.close(reason);
  }

  close(): void {
    if (!this.closed) this.events.signal({ kind: "bye", session: this.opts.session });
    this.finish("closed");
  }
}
