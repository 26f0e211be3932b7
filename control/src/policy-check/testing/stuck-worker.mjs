// A policy-check worker that starts and then never answers: what the pool's time limit is for.
import { parentPort } from "node:worker_threads";

parentPort.on("message", () => {
  for (;;) {
    // Spin: only terminating the thread ends this.
  }
});
parentPort.postMessage({ ready: true });
