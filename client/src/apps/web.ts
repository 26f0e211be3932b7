// @trellis/client/apps/web: what the web-apps service worker needs (HTTP and
// WebSocket over tailnet streams, per-app cookie jars), without the SSH and VNC code.
export type { Duplex } from "./duplex";
export {
  HttpClient,
  HttpError,
  type HttpErrorCode,
  type HttpRequest,
  type HttpResponse,
  type Dial,
} from "./http";
export { AppCookieJars } from "./cookies";
export { TailnetWebSocket } from "./websocket";
