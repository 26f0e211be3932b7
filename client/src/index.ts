// The node engine shared by the browser node and the gateway: identity,
// request signing and the map stream reader now; the control client, peer
// manager and path selection build on them.
export { NodeIdentity } from "./identity";
export { ControlSigner } from "./control-auth";
export { readSse, type SseEvent } from "./sse";
