import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { ROOT } from "./server";

export const CHROMIUM = process.env.TRELLIS_CHROMIUM ?? "/usr/bin/chromium";
export const hasChromium = existsSync(CHROMIUM);
export const ARTIFACTS = join(ROOT, "e2e", "artifacts");

/**
 * Debian's Chromium, headless, with the flags that keep it from reaching for
 * the network (this machine has none besides loopback). Playwright gives each
 * launch a fresh, empty profile of its own.
 */
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export async function launchChromium(
  opts: { executablePath?: string; extraArgs?: string[] } = {},
): Promise<{ browser: Browser; close(): Promise<void> }> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: opts.executablePath ?? CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, ...(opts.extraArgs ?? [])],
  });
  return {
    browser,
    async close() {
      await browser.close();
    },
  };
}
