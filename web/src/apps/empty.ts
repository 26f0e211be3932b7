// Stands in, in browser bundles, for Node built-ins that bundled libraries
// name but reach only on Node paths (dev-tunnels-ssh's key files, its Node
// RSA fallback, vscode-jsonrpc's socket transports). See next.config.ts.
export {};
