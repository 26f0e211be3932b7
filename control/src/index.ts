export { loadConfig, ConfigError, type ServerConfig } from "./config";
export { ControlError } from "./errors";
export { hashPassword, verifyPassword } from "./password";
export { isKnownNodeKey } from "./nodes";
export { completeSetup, isSetupComplete, issueSetupToken } from "./setup";
export {
  ControlRuntime,
  VERSION,
  MAX_NODE_BODY_BYTES,
  type RelayStatusSource,
  type RuntimeOptions,
} from "./runtime";
export { getRuntime, installRuntime } from "./handle";
export { isMapRequest, serveMapStream } from "./http-map";
export { NodeAuthenticator, type SignedRequest } from "./node-auth";
export { createPreAuthKey, listPreAuthKeys, revokePreAuthKey } from "./preauth";
export { DEFAULT_POLICY_TEXT } from "./policy-store";
export { EventBus, type ControlEvent } from "./events";
