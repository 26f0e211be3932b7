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
  // dev-tunnels-ssh (SSH in the page) and vscode-jsonrpc name Node built-ins on
  // code paths a browser never takes (key files, Node's RSA, socket transports);
  // the browser bundle gets an empty module for them. buffer, crypto and stream
  // get Next's own browser polyfills.
  turbopack: {
    resolveAlias: {
      ...Object.fromEntries(["fs", "net"].map((m) => [m, { browser: "./src/apps/empty.ts" }])),
      // Only for Node versions without RSA key generation in node:crypto (before 15).
      "node-rsa": "./src/apps/empty.ts",
    },
  },
};

export default config;
