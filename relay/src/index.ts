export { Relay, type RelayConfig, type RelayHealth } from "./relay";
export { RelayServer, DEFAULT_LIMITS, type RelayLimits, type ClientVerifier, type RelayConn } from "./server";
export { RelayHttpTransport, DERP_SUBPROTOCOL } from "./http";
export { MeshConfigError, MeshPeer, parseMeshPeer, type MeshPeerAddress } from "./mesh";
export { StunServer, bindingResponse } from "./stun";
export { RelayMetrics } from "./metrics";
