// What the browser apps' pages show, read from the page (not from pixels):
// shared by the apps journeys and their benchmark.
import { join } from "node:path";
import type { Page } from "playwright-core";
import { ARTIFACTS } from "./browser";
import { until } from "./wait";

/** The newest terminal's text, line by line (xterm's buffer; `/ssh` pages publish `trellisTerminals`). */
export function terminalText(page: Page): Promise<string> {
  return page.evaluate(() => {
    const terms =
      (window as unknown as { trellisTerminals?: Record<string, unknown> }).trellisTerminals ?? {};
    const ids = Object.keys(terms);
    const term = terms[ids[ids.length - 1]!] as
      | {
          buffer: {
            active: { length: number; getLine(i: number): { translateToString(t: boolean): string } };
          };
        }
      | undefined;
    if (!term) return "";
    const lines: string[] = [];
    for (let i = 0; i < term.buffer.active.length; i++)
      lines.push(term.buffer.active.getLine(i)!.translateToString(true));
    return lines.join("\n");
  });
}

/**
 * Wait for `testId` on `page`; on a timeout, fail with what the page shows
 * instead, and leave a screenshot `<artifact>-missing-<testId>.png`.
 */
export async function shown(page: Page, testId: string, artifact: string, timeout = 30_000): Promise<void> {
  try {
    await page.getByTestId(testId).first().waitFor({ timeout });
  } catch (e) {
    await page
      .screenshot({ path: join(ARTIFACTS, `${artifact}-missing-${testId}.png`), fullPage: true })
      .catch(() => undefined);
    const main = await page
      .locator("main")
      .innerText()
      .catch(() => "?");
    throw new Error(`${testId} did not show at ${page.url()}; the page shows:\n${main.slice(0, 1500)}`, {
      cause: e,
    });
  }
}

/** Type a line into the visible SSH terminal, as a user does. */
export async function typeInTerminal(page: Page, text: string): Promise<void> {
  await page.locator("[data-testid=ssh-session]:visible [data-testid=ssh-terminal]").click();
  await page.keyboard.type(text);
  await page.keyboard.press("Enter");
}

/** Run `command` in the visible terminal and wait until the terminal shows `output`. */
export async function runInTerminal(page: Page, command: string, output: string, ms = 20_000): Promise<void> {
  await typeInTerminal(page, command);
  await until(
    `"${output}" in the terminal after ${command}`,
    async () => (await terminalText(page)).includes(output),
    ms,
  );
}

/** Whether the VNC viewer's canvas shows `rgb` (each channel within 8) at its centre. */
export function vncCentreIs(page: Page, rgb: [number, number, number]): Promise<boolean> {
  return page.evaluate((want) => {
    const canvas = document.querySelector<HTMLCanvasElement>("[data-testid=vnc-screen] canvas");
    if (!canvas || canvas.width < 100) return false;
    const px = canvas.getContext("2d")!.getImageData(canvas.width >> 1, canvas.height >> 1, 1, 1).data;
    return want.every((c, i) => Math.abs(px[i]! - c) < 8);
  }, rgb);
}
