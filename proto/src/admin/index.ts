// @trellis/proto/admin: the admin HTTP API that the console and API tokens
// use — machines, users, keys, policy, settings, logs — and first-run setup.
// Bundle-safe.
export * from "../errors";
export * from "./admin";
export * from "./keys";
export * from "./setup";
export * from "./login";
export * from "./wireguard";
