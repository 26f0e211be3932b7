// One linter for the whole repository (formatting is Prettier's job).
import js from "@eslint/js";
import globals from "globals";
import reactHooks from "eslint-plugin-react-hooks";
import tseslint from "typescript-eslint";

export default tseslint.config(
  {
    ignores: [
      "**/node_modules/**",
      "wasm/pkg/**",
      "wasm/target/**",
      "prisma/generated/**",
      "web/.next/**",
      "web/next-env.d.ts",
      "test-results/**",
      "e2e/artifacts/**",
      "data/**",
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
      "no-console": "off",
      eqeqeq: ["error", "always"],
    },
  },
  {
    // The node engine's shared part runs in browsers: no Node built-ins and no
    // Node-only packages outside its node/ platform folder (and tests).
    files: ["client/src/**/*.ts"],
    ignores: ["client/src/node/**", "client/src/testing/**", "client/src/**/*.test.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["node:*"],
              message: "client/ is browser-safe: Node built-ins belong in client/src/node/.",
            },
          ],
          paths: [
            { name: "ws", message: "client/ is browser-safe: the ws package belongs in client/src/node/." },
          ],
        },
      ],
    },
    languageOptions: { globals: { ...globals.browser, ...globals.worker } },
  },
  {
    files: ["web/src/**/*.tsx", "web/src/**/*.ts"],
    languageOptions: { globals: { ...globals.browser } },
    plugins: { "react-hooks": reactHooks },
    rules: {
      "react-hooks/rules-of-hooks": "error",
      "react-hooks/exhaustive-deps": "error",
    },
  },
);
