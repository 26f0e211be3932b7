// @trellis/client/node: the parts of the node engine that need Node.js (the
// file system for the key, the WASM engine's Node build, node-datachannel for
// WebRTC, `ws`). Never imported by browser code: a lint rule keeps `node:`
// imports out of everything else.
export { NodeIdentity } from "./identity";
export { openWebSocket } from "./platform";
export { nodeEngine, type NodeFlavourOptions } from "./engine";
export { forwardToSocket, type ForwardedConnection } from "./forward";
export { openUdpSocket, reachableAddresses, UdpBindError, UDP_BUFFER_BYTES } from "./udp";
export type { NativeHooks } from "../engine/engine";
