// @trellis/client/testing: helpers for tests of the node side (and of servers, through it).
export { MapReader } from "./map-reader";
export { fullMap, testKey, testPeer } from "./maps";
export { hasXvnc, startXvnc, XvncError, type RunningXvnc, type XvncOptions } from "./xvnc";
