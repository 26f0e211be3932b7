// @trellis/client/browser: a browser as a node of the tailnet. The node runs
// in a SharedWorker (`EngineHost`: one per browser profile, its key in
// IndexedDB); pages reach it through `BrowserNodeClient` and host its WebRTC
// data channels.
export { BROWSER_KEY_ITEM } from "./identity";
export { KeyStore, type KeyStoreDeps } from "./keystore";
export { EngineHost, type EngineHostOptions, type HostPorts } from "./host";
export { BrowserNodeClient, NodeCallError, type BrowserNodeClientOptions, type PortLike } from "./page";
export type { EndReason, NodeState, ToPage, ToWorker, TransferredConnection } from "./protocol";
export { isTakenOver } from "./protocol";
export { openWebSocket } from "./platform";
