import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// One run covers every workspace: unit and integration tests live next to the
// code (`*/src/**/*.test.ts`), user journeys in e2e/. `npm test` drives it.
// The journeys run after the unit tests, not beside them: on a 2-core machine
// Chromium, Next.js and wireguard-go would otherwise starve the PostgreSQL,
// relay and tunnel tests of CPU.
export default defineConfig({
  test: {
    projects: [
      {
        resolve: { alias: { "@/": fileURLToPath(new URL("./web/src/", import.meta.url)) } },
        test: {
          name: "unit",
          sequence: { groupOrder: 0 },
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
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
