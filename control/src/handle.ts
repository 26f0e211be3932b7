import type { ControlRuntime } from "./runtime";

// The server process installs its ControlRuntime here and Next.js route handlers
// read it back. This module imports only types, so bundling it for the web app
// does not pull database drivers into the bundle.

const KEY = Symbol.for("trellis.control.runtime");
type Holder = { [KEY]?: ControlRuntime };

export function installRuntime(runtime: ControlRuntime | null): void {
  if (runtime) (globalThis as Holder)[KEY] = runtime;
  else delete (globalThis as Holder)[KEY];
}

/** The runtime installed by the server process; throws if none is. */
export function getRuntime(): ControlRuntime {
  const rt = (globalThis as Holder)[KEY];
  if (!rt) throw new Error("the Trellis control runtime is not running in this process");
  return rt;
}
