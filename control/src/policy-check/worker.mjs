// Entry of a policy-check worker thread. Workspaces ship TypeScript source
// (docs/decisions.md): tsx's tsImport loads the worker's TypeScript, scoped
// to this import, whether or not the process runs under tsx (the server runs
// with --import tsx, Vitest without it).
import { tsImport } from "tsx/esm/api";

await tsImport("./worker.ts", import.meta.url);
