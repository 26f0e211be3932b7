// The body of a policy-check worker thread (pool.ts): one check at a time,
// each answered by its id. It says "ready" once loaded, so the pool's time
// limit counts checking, not starting.
import { parentPort } from "node:worker_threads";
import { runCheck, type CheckRequest } from "./job";

if (!parentPort) throw new Error("policy-check/worker.ts runs only as a worker thread");
const port = parentPort;
port.on("message", (req: CheckRequest) => port.postMessage(runCheck(req)));
port.postMessage({ ready: true });
