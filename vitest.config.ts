import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// One run covers every workspace: unit and integration tests live next to the
// code (`*/src/**/*.test.ts`), user journeys in e2e/. `npm test` drives it.
export default defineConfig({
  test: {
    projects: [
      {
        resolve: { alias: { "@/": fileURLToPath(new URL("./web/src/", import.meta.url)) } },
        test: {
          name: "unit",
          include: ["*/src/**/*.test.ts", "wasm/ts/**/*.test.ts", "scripts/**/*.test.ts"],
          environment: "node",
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["e2e/tests/**/*.test.ts"],
          environment: "node",
          testTimeout: 180_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
