// What the browser apps' pages show, read from the page (not from pixels):
// shared by the apps journeys and their benchmark.
import type { Page } from "playwright-core";

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
