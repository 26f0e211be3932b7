// Wire types and schemas shared by the control server, the web app, gateways and
// browser nodes (Trellis's counterpart of Tailscale's tailcfg). Bundle-safe: no
// Node built-ins, so the browser can import it too.
export * from "./health";
export * from "./setup";
export * from "./errors";
export * from "./keys";
export * from "./control";
export * from "./nodeauth";
export * from "./admin";
