// @trellis/control/admin: what the admin HTTP API (console and API tokens)
// does. Each function takes the context, the acting user, and untrusted input;
// it checks scopes, validates, audits and publishes. Route handlers only map
// requests to these calls and ControlErrors to responses.
export type { AdminContext } from "./context";
export {
  listMachines,
  getMachine,
  updateMachine,
  setMachineRoutes,
  authorizeMachine,
  expireMachineKey,
  removeMachine,
  tagChoices,
} from "./machines";
export { listUsers, getUser, updateUser, removeUser, clearLoginThrottle } from "./users";
export { createKey, listKeys, revokeKey } from "./keys";
export { listAudit, exportAudit, MAX_AUDIT_EXPORT } from "./audit";
export { listConnections } from "./connections";
export {
  getPolicy,
  validatePolicyText,
  savePolicyText,
  applyPolicy,
  listPolicyVersions,
  getPolicyVersion,
  restorePolicyVersion,
  checkReachability,
} from "./policy";
export { machineAccess } from "./access";
export { createWireGuardPeer, wireGuardPeerConfig } from "./wireguard";
