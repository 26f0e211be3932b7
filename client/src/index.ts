// The node engine shared by the browser node and the gateway: identity now;
// the control client, peer manager and path selection build on it.
export { NodeIdentity } from "./identity";
