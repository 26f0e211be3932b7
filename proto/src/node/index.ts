// @trellis/proto/node: what nodes and the control server say to each other —
// registration, the netmap and its deltas, request signatures, endpoint,
// connection and signalling reports. Bundle-safe.
export * from "../keys";
export * from "../errors";
export * from "./control";
export * from "./nodeauth";
export * from "./reports";
