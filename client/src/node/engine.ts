// The node engine's Node flavour (gateways, and the tests and benchmarks
// that play a node): the WASM engine's Node build, `ws` for the relay, and
// node-datachannel for WebRTC (its RTCPeerConnection polyfill, so the same
// data-channel code runs here as on a page; see docs/decisions.md).
import { RTCPeerConnection } from "node-datachannel/polyfill";
import { WireGuardEngine } from "@trellis/wasm/node";
import type { RegisterRequest } from "@trellis/proto/node";
import { ControlClient } from "../control/client";
import { keyHolder } from "../control/signer";
import { NodeEngine, type HostPackets, type NativeHooks, type NodeEngineOptions } from "../engine/engine";
import type { UdpSocket } from "../paths/udp";
import { rtcLinks, type PeerConnectionClass } from "../paths/webrtc";
import { openWebSocket } from "./platform";

export interface NodeFlavourOptions {
  /** The control server, e.g. `https://vpn.example.com`. */
  baseUrl: string;
  privateKey: Uint8Array;
  /**
   * Registered before each connection (a known key re-registers; a new one
   * needs `preAuthKey`). A function is asked each time, so a daemon whose
   * settings change (`trellis set`) re-registers what is current.
   */
  register?: RegisterRequest | (() => RegisterRequest);
  /** false: no WebRTC (the relay carries everything). */
  webrtc?: boolean;
  log?: NodeEngineOptions["log"];
  maxAttempts?: number;
  /**
   * The host's IP stack (a TUN device): the WASM engine then runs without its
   * userspace stack and admitted packets go here; feed the host's packets to
   * `engine.sendPackets`. Absent: the userspace stack (ping, TCP and UDP
   * through the engine's own calls).
   */
  packets?: HostPackets;
  /** The node's UDP socket (openUdpSocket): direct UDP paths to peers that have one too. */
  udp?: UdpSocket;
  /**
   * A native data plane (gateway/dataplane) in place of the WASM engine: its
   * engine (same calls), and the hooks the node engine drives it with.
   */
  native?: { engine: WireGuardEngine; hooks: NativeHooks };
}

/** A node engine running in Node; call `start()`. */
export function nodeEngine(opts: NodeFlavourOptions): NodeEngine {
  const control = new ControlClient({ baseUrl: opts.baseUrl, key: keyHolder(opts.privateKey) });
  const register = opts.register;
  return new NodeEngine({
    control,
    privateKey: opts.privateKey,
    prepare: register
      ? async () => void (await control.register(typeof register === "function" ? register() : register))
      : undefined,
    maxAttempts: opts.maxAttempts,
    log: opts.log,
    platform: {
      createWasmEngine: (key) =>
        opts.native?.engine ?? new WireGuardEngine(key, { stack: opts.packets === undefined }),
      dataplane: opts.native?.hooks,
      packets: opts.packets,
      socketFactory: openWebSocket,
      udp: opts.udp,
      directLinks:
        opts.webrtc === false ? undefined : rtcLinks(RTCPeerConnection as unknown as PeerConnectionClass),
    },
  });
}
