// @trellis/client/apps: what the browser apps speak over the tailnet's TCP
// streams (SSH now; HTTP, WebSocket and VNC beside it). Browser-safe; the
// same code runs in Node for the tests and benchmarks.
export type { Duplex } from "./duplex";
export { SshShell, SshError, type HostKey, type SshAuth, type SshExit, type SshShellOptions } from "./ssh";
export {
  SshKeyring,
  KnownHosts,
  SshKeyError,
  generateSshKey,
  importPrivateKey,
  publicKeyLine,
  type HostKeyCheck,
  type SecretStore,
  type SshKeyInfo,
  type SshKeyKind,
} from "./ssh-keys";
export { VncChannel, vncChannel } from "./vnc-socket";
export {
  HttpClient,
  HttpError,
  type Dial,
  type HttpClientOptions,
  type HttpErrorCode,
  type HttpRequest,
  type HttpResponse,
  type UpgradeResult,
} from "./http";
export {
  connectWebSocket,
  WebSocketSession,
  TailnetWebSocket,
  WebSocketError,
  type WebSocketConnectOptions,
  type WebSocketClose,
  type WebSocketErrorCode,
  type TailnetWebSocketOptions,
} from "./websocket";
export { AppCookieJars, CookieJarError, type AppCookieJarsOptions } from "./cookies";
