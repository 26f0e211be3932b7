// @trellis/client/browser: a browser tab as a node (its key in the origin's
// storage, registration with the console session).
export { BrowserIdentity, BROWSER_KEY_ITEM, type KeyStorage } from "./identity";
export { BrowserNode, type BrowserNodeOptions, type NodePhase } from "./node";
export { openWebSocket } from "./platform";
