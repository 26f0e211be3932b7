export * from "./actor";
export * from "./sessions";
export * from "./ratelimit";
export * from "./login";
export * from "./oidc";
export * from "./tokens";
export * from "./invitations";
export * from "./secret";
