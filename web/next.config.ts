import type { NextConfig } from "next";

const config: NextConfig = {
  // Workspace packages ship TypeScript source; only bundle-safe ones are imported
  // by the app (database drivers stay in the server process, see src/lib/api.ts).
  transpilePackages: [
    "@trellis/proto",
    "@trellis/policy",
    "@trellis/control",
    "@trellis/client",
    "@trellis/wasm",
  ],
  // `npm run typecheck` checks the whole repo with tsc; not checking twice keeps builds fast.
  typescript: { ignoreBuildErrors: true },
  poweredByHeader: false,
  reactStrictMode: true,
  devIndicators: false,
};

export default config;
