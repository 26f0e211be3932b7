import { describe, expect, it } from "vitest";
import { MAX_ISSUES, PolicyError } from "./errors";
import { lineIndex, makeLocator, parseHuJSON } from "./hujson";
import { parsePolicy } from "./validate";

function naive(text: string, offset: number) {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

function thrown(fn: () => unknown): PolicyError {
  try {
    fn();
  } catch (err) {
    if (PolicyError.is(err)) return err;
    throw err;
  }
  throw new Error("expected a PolicyError");
}

describe("lineIndex", () => {
  it("agrees with a scan from the start at every offset, CRLF and blank lines included", () => {
    const text = '{\n  "a": 1,\r\n\n  "b": [\n    2\n  ]\n}\n';
    const at = lineIndex(text);
    for (let o = 0; o <= text.length; o++) expect(at(o), `offset ${o}`).toEqual(naive(text, o));
    expect(lineIndex("")(0)).toEqual({ line: 1, column: 1 });
  });
});

describe("a policy with very many problems", () => {
  it("lists the first MAX_ISSUES duplicate keys, located, and counts the rest", () => {
    const n = 3000;
    const lines = Array.from({ length: n }, () => '  "group:x": [],');
    const err = thrown(() => parseHuJSON(`{\n${lines.join("\n")}\n}`));
    expect(err.problems).toHaveLength(MAX_ISSUES + 1);
    expect(err.problems[0]).toMatchObject({ path: '["group:x"]', line: 3, column: 3 });
    expect(err.problems[MAX_ISSUES - 1]).toMatchObject({ line: MAX_ISSUES + 2 });
    expect(err.problems[MAX_ISSUES]!.message).toMatch(/more problems not listed/);
    expect(err.message.split("\n")).toHaveLength(MAX_ISSUES + 1);
  });

  it("caps schema and semantic issues the same way (an API answer stays small)", () => {
    const unknown = Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`bogus${i}`, 1]));
    const text = JSON.stringify({ ...unknown }, null, 2);
    const err = thrown(() => parsePolicy(text));
    expect(err.problems).toHaveLength(MAX_ISSUES + 1);
    expect(err.problems[0]).toMatchObject({ path: "bogus0", line: 2, column: 3 });
    expect(err.problems[MAX_ISSUES]!.message).toBe(`and ${2000 - MAX_ISSUES} more problems not listed`);
  });

  it("the locator still finds keys and array items", () => {
    const text = '{\n  "acls": [\n    {"action": "accept"}\n  ]\n}';
    const locate = makeLocator(text);
    expect(locate(["acls"])).toEqual({ line: 2, column: 3 });
    expect(locate(["acls", 0, "action"])).toEqual({ line: 3, column: 6 });
    expect(locate(["acls", 5])).toEqual({ line: 2, column: 3 });
  });
});
