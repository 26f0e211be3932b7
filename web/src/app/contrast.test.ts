// Text in the console is readable in both themes: every rule of globals.css
// that sets a text colour, on the background it sets (or, for text on the
// page, on the page and on a panel), has a WCAG 2 contrast ratio of at least
// 4.5:1 — the green "active"/"current" badges and the diff's "+" lines
// included. Computed from the stylesheet's own variables, so a new colour
// cannot slip below it unnoticed.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const CSS = readFileSync(new URL("./globals.css", import.meta.url), "utf8");

/** The custom properties declared in the block that opens with `opener`. */
function variables(opener: string): Record<string, string> {
  const start = CSS.indexOf(opener);
  if (start < 0) throw new Error(`no block ${opener}`);
  const body = CSS.slice(start + opener.length, CSS.indexOf("}", start));
  return Object.fromEntries([...body.matchAll(/(--[\w-]+):\s*([^;]+);/g)].map((m) => [m[1]!, m[2]!.trim()]));
}

const LIGHT = variables(":root {");
const DARK = variables(':root[data-theme="dark"] {');
const THEMES = { light: LIGHT, dark: { ...LIGHT, ...DARK } };

/** Top-level rules (not inside @media) by selector: their declarations. */
function rules(): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  for (const m of CSS.matchAll(/^([^\s@/}][^{]*)\{([^}]*)\}/gm)) {
    const decls = Object.fromEntries(
      [...m[2]!.matchAll(/^\s*([\w-]+)\s*:\s*([^;]+);/gm)].map((d) => [d[1]!, d[2]!.trim()]),
    );
    for (const sel of m[1]!.split(",")) out.set(sel.trim(), { ...out.get(sel.trim()), ...decls });
  }
  return out;
}

function resolve(value: string, vars: Record<string, string>): string {
  const v = /^var\((--[\w-]+)\)$/.exec(value);
  return v ? resolve(vars[v[1]!] ?? `unknown ${v[1]}`, vars) : value;
}

function luminance(hex: string): number {
  const m = /^#([0-9a-f]{6})$/i.exec(hex);
  if (!m) throw new Error(`not a #rrggbb colour: ${hex}`);
  const [r, g, b] = [0, 2, 4].map((i) => {
    const c = parseInt(m[1]!.slice(i, i + 2), 16) / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
}

function contrast(a: string, b: string): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi! + 0.05) / (lo! + 0.05);
}

const RULES = rules();

/** Rules that set both a text colour and its own background. */
const ON_OWN_BACKGROUND = [
  ".badge",
  ".badge-ok",
  ".badge-warn",
  ".badge-bad",
  ".badge-info",
  ".badge-role-admin",
  ".alert-error",
  ".alert-success",
  ".alert-warn",
  ".diff .add",
  ".diff .del",
  ".diff .gap",
];
/** Rules that set a text colour shown on the page or on a panel. */
const ON_PAGE = [".status.ok", ".status.bad", ".error", ".field-error", ".muted", ".hint", ".diff .ctx"];

/** The variables the policy editor's syntax highlighting uses for text. */
const EDITOR_TEXT = (() => {
  const src = readFileSync(new URL("./acls/policy-editor.tsx", import.meta.url), "utf8");
  return [...new Set([...src.matchAll(/color: "var\((--[\w-]+)\)"/g)].map((m) => m[1]!))];
})();

describe("contrast of the console's colours (WCAG 2, at least 4.5:1)", () => {
  it("computes the ratio as WCAG does", () => {
    expect(contrast("#000000", "#ffffff")).toBeCloseTo(21, 5);
    expect(contrast("#767676", "#ffffff")).toBeCloseTo(4.54, 2);
  });

  it("reads the policy editor's token colours from its source", () => {
    expect(EDITOR_TEXT).toEqual(
      expect.arrayContaining(["--hl-prop", "--hl-string", "--hl-number", "--hl-keyword"]),
    );
  });

  it("keeps the dark theme of the system setting and of the switch the same", () => {
    const media = variables(':root:not([data-theme="light"]) {');
    expect(media).toEqual(Object.fromEntries(Object.entries(DARK).filter(([k]) => k.startsWith("--"))));
  });

  for (const [theme, vars] of Object.entries(THEMES)) {
    for (const sel of ON_OWN_BACKGROUND) {
      it(`${theme}: ${sel}`, () => {
        const rule = RULES.get(sel);
        expect(rule, sel).toBeDefined();
        const fg = resolve(rule!.color!, vars);
        const bg = resolve(rule!.background ?? rule!["background-color"]!, vars);
        expect(contrast(fg, bg), `${sel}: ${fg} on ${bg}`).toBeGreaterThanOrEqual(4.5);
      });
    }
    // The policy editor (acls/policy-editor.tsx) colours tokens with these on
    // --panel; its gutter's line numbers are --muted on --panel-2.
    for (const v of EDITOR_TEXT) {
      it(`${theme}: the policy editor's ${v} on its panel`, () => {
        const fg = resolve(`var(${v})`, vars);
        const bg = resolve("var(--panel)", vars);
        expect(contrast(fg, bg), `${v}: ${fg} on ${bg}`).toBeGreaterThanOrEqual(4.5);
      });
    }
    it(`${theme}: the policy editor's line numbers on its gutter`, () => {
      const fg = resolve("var(--muted)", vars);
      const bg = resolve("var(--panel-2)", vars);
      expect(contrast(fg, bg), `--muted: ${fg} on ${bg}`).toBeGreaterThanOrEqual(4.5);
    });
    for (const sel of ON_PAGE) {
      it(`${theme}: ${sel} on the page and on a panel`, () => {
        const fg = resolve(RULES.get(sel)!.color!, vars);
        for (const bg of [resolve("var(--bg)", vars), resolve("var(--panel)", vars)])
          expect(contrast(fg, bg), `${sel}: ${fg} on ${bg}`).toBeGreaterThanOrEqual(4.5);
      });
    }
  }
});
