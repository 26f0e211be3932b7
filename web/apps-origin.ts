// The web-apps origin: a second listener of the Trellis server (its own
// port, so its own origin) that serves only the service worker carrying
// tailnet web apps, the script of its pages, and a boot page. Apps render
// here, framed by the console page at /web/<machine>:<port>/…, so an app's
// scripts never run with the console's origin: they cannot call its API,
// read its storage or use the browser node's keys. The two scripts are
// bundled from web/src/apps/origin/ with esbuild when the server starts.
import { createServer, type Server } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));

async function bundle(entry: string): Promise<string> {
  const out = await build({
    entryPoints: [join(here, "src/apps/origin", entry)],
    bundle: true,
    write: false,
    format: "iife",
    platform: "browser",
    target: "es2022",
    minify: true,
    legalComments: "none",
    logLevel: "silent",
  });
  return out.outputFiles[0]!.text;
}

/** A hidden page of the console's, on this origin: it hands the service worker bridges from the console page. */
const BRIDGE_HTML = `<!doctype html><html lang="en" data-trellis-bridge><meta charset="utf-8"><title>Trellis bridge</title><script src="/__trellis/page.js"></script></html>`;

const BOOT_HTML = `<!doctype html><html lang="en" data-trellis-boot><meta charset="utf-8"><meta name="color-scheme" content="light dark"><title>Opening…</title><body style="font:15px system-ui;margin:2rem"><p id="status">Opening the app through this browser's node…</p><script src="/__trellis/page.js"></script></body></html>`;

/** Start the apps origin's listener for the console at `consoleUrl`. */
export async function startAppsOrigin(opts: {
  port: number;
  host: string;
  consoleUrl: string;
}): Promise<Server> {
  const consoleOrigin = new URL(opts.consoleUrl).origin;
  const [sw, page] = await Promise.all([bundle("sw.ts"), bundle("page.ts")]);
  const pageJs = `self.__TRELLIS_CONSOLE=${JSON.stringify(consoleOrigin)};\n${page}`;
  const common = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-cache",
  };
  const server = createServer((req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      // Requests other than page loads are the service worker's; one that reaches here found none.
      res
        .writeHead(409, { ...common, "content-type": "text/plain" })
        .end("Open this app from the Trellis console.\n");
      return;
    }
    const path = (req.url ?? "/").split("?")[0]!;
    if (path === "/__trellis/sw.js") {
      res
        .writeHead(200, { ...common, "content-type": "text/javascript", "service-worker-allowed": "/" })
        .end(sw);
    } else if (path === "/__trellis/page.js") {
      res.writeHead(200, { ...common, "content-type": "text/javascript" }).end(pageJs);
    } else if (path === "/__trellis/bridge.html") {
      res
        .writeHead(200, {
          ...common,
          "content-type": "text/html; charset=utf-8",
          "content-security-policy": `frame-ancestors ${consoleOrigin}`,
        })
        .end(BRIDGE_HTML);
    } else {
      res
        .writeHead(200, {
          ...common,
          "content-type": "text/html; charset=utf-8",
          // Only the console may frame the boot page (it hands it the node's connections).
          "content-security-policy": `frame-ancestors ${consoleOrigin}`,
        })
        .end(BOOT_HTML);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  return server;
}
