// Wire types and schemas shared by the control server, the web app, gateways and
// browser nodes (Trellis's counterpart of Tailscale's tailcfg). Bundle-safe: no
// Node built-ins, so the browser can import it too. Node-facing types are also
// exported alone as `@trellis/proto/node`, admin API types as `@trellis/proto/admin`.
export * from "./health";
export * from "./node/index";
export * from "./admin/index";
