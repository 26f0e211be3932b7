// @trellis/client: the node side of Trellis, shared by the browser tab and the
// gateway. Browser-safe (no Node built-ins): platform parts live in
// `./browser` and `./node` and are chosen by the importer, or by the
// `@trellis/client/platform` export condition.
//   control/  the control client: signed calls, the map stream, resync and backoff
//   netmap/   the node's map, kept in sequence
//   paths/    how packets reach peers: endpoint handles, the DERP relay client
export * from "./control/index";
export { NetmapState, MapSequenceError, checkSeq } from "./netmap/state";
export { EndpointTable } from "./paths/endpoints";
export { resolveHost, ResolveError, type Resolved } from "./netmap/resolve";
export {
  NodeEngine,
  EngineError,
  type EnginePlatform,
  type HostPackets,
  MAX_HOST_PACKETS,
  type EngineStatus,
  type NodeEngineOptions,
  type PathKind,
  type PeerStatus,
  type PingResult,
  type NetcheckReport,
  type FlowEnd,
  type ForwardedTcp,
  type RouteForwarder,
} from "./engine/engine";
export type { UdpSocket, UdpSocketFactory } from "./paths/udp";
export { UdpPaths, type StunResult } from "./paths/udp-paths";
export { formatUdpAddr, parseUdpAddr, type UdpAddr } from "./paths/disco";
export { TcpConnection, ConnectionError } from "./engine/sockets";
export { echoRequest, parseEchoReply } from "./engine/icmp";
export { rtcLinks, type DirectLink, type DirectLinkFactory, type PeerConnectionClass } from "./paths/webrtc";
export { RtcSignal, openSignal, sealSignal, SignalError } from "./paths/signalling";
