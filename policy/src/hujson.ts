// HuJSON ("human JSON": JSON with comments and trailing commas), the format of
// Tailscale policy files. jsonc-parser does the parsing; this file turns its
// offsets into line:column and the key path a person can find in the file.
import {
  findNodeAtLocation,
  getLocation,
  parse,
  parseTree,
  printParseErrorCode,
  type Node,
  type ParseError,
} from "jsonc-parser";
import { formatPath, MAX_ISSUES, PolicyError, type PolicyIssue } from "./errors";

/**
 * Line and column of offsets in one text, from an index of line starts built
 * once (O(n)); each lookup is a binary search. Locating every issue of a
 * large policy by rescanning the text from the start was quadratic.
 */
export function lineIndex(text: string): (offset: number) => { line: number; column: number } {
  const starts = [0];
  for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) starts.push(i + 1);
  return (offset) => {
    const at = Math.max(0, Math.min(offset, text.length));
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= at) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - starts[lo]! + 1 };
  };
}

/** 1-based line and column of a character offset in `text` (for one lookup; use {@link lineIndex} for many). */
export function lineCol(text: string, offset: number): { line: number; column: number } {
  return lineIndex(text)(offset);
}

const SYNTAX_HINTS: Record<string, string> = {
  PropertyNameExpected: "expected a quoted key",
  ValueExpected: "expected a value",
  ColonExpected: 'expected ":" after the key',
  CommaExpected: 'expected "," between entries',
  CloseBraceExpected: 'expected "}"',
  CloseBracketExpected: 'expected "]"',
  EndOfFileExpected: "unexpected text after the end of the document",
  InvalidSymbol: "unexpected character (keys and strings need double quotes)",
  UnexpectedEndOfComment: "unterminated /* comment",
  UnexpectedEndOfString: "unterminated string",
  InvalidEscapeCharacter: "invalid escape in string",
  InvalidUnicode: "invalid \\u escape in string",
  InvalidCharacter: "invalid character in string",
};

/**
 * Parse HuJSON text. Every syntax error is reported with its line:column and
 * the key it occurred under; duplicate keys are errors too, because JSON
 * parsers silently keep the last one and a second `"acls"` would quietly
 * replace the first.
 */
export function parseHuJSON(text: string, source?: string): unknown {
  const errors: ParseError[] = [];
  const value: unknown = parse(text, errors, {
    allowTrailingComma: true,
    disallowComments: false,
    allowEmptyContent: false,
  });
  // Only the first syntax error is reported: the parser recovers and goes on,
  // but what it finds after the first mistake is mostly that mistake's echo.
  const at = lineIndex(text);
  const issues: PolicyIssue[] = errors.slice(0, 1).map((e) => {
    const code = printParseErrorCode(e.error);
    const path = getLocation(text, e.offset).path;
    // A key being typed shows up as a trailing "" segment; the enclosing key is what a reader finds.
    while (path.length > 0 && path[path.length - 1] === "") path.pop();
    return {
      path: formatPath(path),
      message: `syntax error: ${SYNTAX_HINTS[code] ?? code}`,
      ...at(e.offset),
    };
  });
  if (issues.length === 0) {
    const tree = parseTree(text, [], { allowTrailingComma: true });
    if (tree) findDuplicateKeys(at, tree, [], issues);
  }
  if (issues.length > 0) throw new PolicyError("syntax", issues, source);
  return value;
}

function findDuplicateKeys(
  at: (offset: number) => { line: number; column: number },
  node: Node,
  path: (string | number)[],
  issues: PolicyIssue[],
): void {
  // Issues past the cap are dropped by PolicyError: stop looking for them.
  if (issues.length > MAX_ISSUES) return;
  if (node.type === "object") {
    const seen = new Set<string>();
    for (const prop of node.children ?? []) {
      const [keyNode, valueNode] = prop.children ?? [];
      if (!keyNode) continue;
      const key = String(keyNode.value);
      if (seen.has(key)) {
        issues.push({
          path: formatPath([...path, key]),
          message: `duplicate key "${key}"`,
          ...at(keyNode.offset),
        });
      }
      seen.add(key);
      if (valueNode) findDuplicateKeys(at, valueNode, [...path, key], issues);
    }
  } else if (node.type === "array") {
    (node.children ?? []).forEach((child, i) => findDuplicateKeys(at, child, [...path, i], issues));
  }
}

/**
 * A locator for paths in one HuJSON text: the position of the key (for object
 * members) or the value (for array items) that `path` names, falling back to
 * the nearest ancestor that exists. Used to put line:column on schema and
 * semantic errors found after parsing.
 */
export function makeLocator(
  text: string,
): (path: readonly (string | number)[]) => { line: number; column: number } | undefined {
  const tree = parseTree(text, [], { allowTrailingComma: true });
  let index: ReturnType<typeof lineIndex> | undefined;
  let located = 0;
  return (path) => {
    // Past the cap PolicyError keeps no issue, so none is worth locating
    // (finding a key among many siblings is itself a scan).
    if (!tree || ++located > MAX_ISSUES) return undefined;
    index ??= lineIndex(text);
    for (let n = path.length; n >= 0; n--) {
      const node = findNodeAtLocation(tree, path.slice(0, n) as (string | number)[]);
      if (!node) continue;
      // For an object member, point at its key: that is what a reader looks for.
      const keyNode = node.parent?.type === "property" ? node.parent.children?.[0] : undefined;
      return index((keyNode ?? node).offset);
    }
    return undefined;
  };
}
