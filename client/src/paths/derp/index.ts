// @trellis/client/derp: the DERP relay protocol from a node's side — framing,
// the client (over any WebSocket), and the NaCl box its login is sealed with.
// The relay server (relay/) uses the same framing.
export {
  DerpClient,
  DerpClientError,
  RelayLink,
  type DerpClientOptions,
  type DerpHandlers,
  type RelayLinkOptions,
  type SocketFactory,
  type WebSocketLike,
} from "./client";
export * from "./frame";
export { openBox, sealBox } from "./box";
