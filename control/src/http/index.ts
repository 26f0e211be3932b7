// The control server's HTTP edge on node:http (the server process mounts it
// before Next.js): the node API and what it shares with the admin API.
export * from "./shared";
export { NodeApi, type NodeApiOptions } from "./node-api";
export { MAP_PATH, serveMapStream } from "./map";
