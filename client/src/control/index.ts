// @trellis/client/control: the node's side of the control protocol.
export { ControlClient, ControlRequestError, type ControlClientOptions, type NodeKeyHolder } from "./client";
export { MapStream, MapStreamError, type MapEvent, type MapStreamOptions } from "./map-stream";
export { MapWatcher, type MapWatchHandlers, type MapWatchOptions, type WatchState } from "./watch";
export { ControlSigner, keyHolder } from "./signer";
export { readSse, SseError, type SseEvent } from "./sse";
