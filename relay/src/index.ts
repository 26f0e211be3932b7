export { Relay, type RelayOptions, type RelayHealth } from "./server";
export * from "./frame";
