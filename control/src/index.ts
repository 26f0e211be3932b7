export { loadConfig, ConfigError, type ServerConfig } from "./config";
export { ControlError } from "./errors";
export { hashPassword, verifyPassword } from "./password";
export { isKnownNodeKey } from "./nodes";
export { completeSetup, isSetupComplete, issueSetupToken } from "./setup";
export { ControlRuntime, VERSION, type RelayStatusSource } from "./runtime";
export { getRuntime, installRuntime } from "./handle";
