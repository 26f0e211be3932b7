// The repository's layering, checked from the workspace manifests and the
// imports in the source: which package may depend on which. A new import that
// crosses a layer fails here, with the file named.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

interface Manifest {
  name: string;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

const manifest = (dir: string): Manifest =>
  JSON.parse(readFileSync(join(ROOT, dir, "package.json"), "utf8")) as Manifest;

function sources(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      if (name === "node_modules" || name === "testdata") continue;
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.tsx?$/.test(name)) out.push(p);
    }
  };
  walk(join(ROOT, dir));
  return out;
}

/** Every module specifier a file imports or re-exports (static and dynamic). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specs: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+["']([^"']+)["']/g))
    specs.push(m[1]!);
  for (const m of text.matchAll(/(?:^|\n)\s*import\s+["']([^"']+)["']/g)) specs.push(m[1]!);
  for (const m of text.matchAll(/import\(\s*["']([^"']+)["']\s*\)/g)) specs.push(m[1]!);
  return specs;
}

const pkgOf = (spec: string) =>
  spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!;

describe("layering", () => {
  for (const dir of ["relay", "policy"]) {
    it(`${dir}/ depends on neither the control plane nor the database`, () => {
      const m = manifest(dir);
      const deps = Object.keys({ ...m.dependencies, ...m.devDependencies });
      expect(deps).not.toContain("@trellis/control");
      expect(deps).not.toContain("@trellis/db");
      const offending = sources(join(dir, "src"))
        .concat(sources(dir).filter((f) => f.includes(`${dir}/bench/`)))
        .filter((f) => importsOf(f).some((s) => ["@trellis/control", "@trellis/db"].includes(pkgOf(s))))
        .map((f) => relative(ROOT, f));
      expect(offending).toEqual([]);
    });
  }

  it("the policy engine imports nothing that needs a server: no Node built-ins, no database", () => {
    const offending = sources("policy/src")
      .filter((f) => !f.endsWith(".test.ts"))
      .filter((f) =>
        importsOf(f).some((s) => s.startsWith("node:") || ["pg", "@prisma/client"].includes(pkgOf(s))),
      )
      .map((f) => relative(ROOT, f));
    expect(offending).toEqual([]);
  });

  it("client/ is browser-safe outside its node/ folder: no Node built-ins, no ws", () => {
    const offending = sources("client/src")
      .filter((f) => !/\/(node|testing)\//.test(f) && !f.endsWith(".test.ts"))
      .filter((f) => importsOf(f).some((s) => s.startsWith("node:") || pkgOf(s) === "ws"))
      .map((f) => relative(ROOT, f));
    expect(offending).toEqual([]);
  });

  it("each workspace declares the workspaces its source imports", () => {
    const dirs = ["proto", "policy", "client", "relay", "control", "gateway", "web", "e2e", "prisma", "log"];
    const names = new Map(dirs.map((d) => [manifest(d).name, d]));
    const undeclared: string[] = [];
    for (const dir of dirs) {
      const m = manifest(dir);
      const declared = new Set([m.name, ...Object.keys({ ...m.dependencies, ...m.devDependencies })]);
      for (const f of sources(dir)) {
        for (const s of importsOf(f)) {
          const p = pkgOf(s);
          if (names.has(p) && !declared.has(p)) undeclared.push(`${relative(ROOT, f)} imports ${p}`);
        }
      }
    }
    expect(undeclared).toEqual([]);
  });
});
