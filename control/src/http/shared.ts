// @trellis/control/http: the HTTP edge shared by the node API (node:http) and
// the admin API (Next.js route handlers): one body reader, one error
// mapping, one SSE writer. Bundle-safe (no node: imports).
export { bodyTooLarge, MAX_NODE_BODY_BYTES, parseJson, readBody } from "./body";
export { clientAddress, parseTrustedProxies } from "./client-address";
export { errorReply, errorReplyOf, type ErrorReply } from "./errors";
export { SSE_HEADERS, SSE_HEARTBEAT, sseText } from "./sse";
