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
import { formatPath, PolicyError, type PolicyIssue } from "./errors";

/** 1-based line and column of a character offset in `text`. */
export function lineCol(text: string, offset: number): { line: number; column: number } {
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
  const issues: PolicyIssue[] = errors.slice(0, 1).map((e) => {
    const code = printParseErrorCode(e.error);
    const path = getLocation(text, e.offset).path;
    // A key being typed shows up as a trailing "" segment; the enclosing key is what a reader finds.
    while (path.length > 0 && path[path.length - 1] === "") path.pop();
    return {
      path: formatPath(path),
      message: `syntax error: ${SYNTAX_HINTS[code] ?? code}`,
      ...lineCol(text, e.offset),
    };
  });
  if (issues.length === 0) {
    const tree = parseTree(text, [], { allowTrailingComma: true });
    if (tree) findDuplicateKeys(text, tree, [], issues);
  }
  if (issues.length > 0) throw new PolicyError("syntax", issues, source);
  return value;
}

function findDuplicateKeys(text: string, node: Node, path: (string | number)[], issues: PolicyIssue[]): void {
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
          ...lineCol(text, keyNode.offset),
        });
      }
      seen.add(key);
      if (valueNode) findDuplicateKeys(text, valueNode, [...path, key], issues);
    }
  } else if (node.type === "array") {
    (node.children ?? []).forEach((child, i) => findDuplicateKeys(text, child, [...path, i], issues));
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
  return (path) => {
    if (!tree) return undefined;
    for (let n = path.length; n >= 0; n--) {
      const node = findNodeAtLocation(tree, path.slice(0, n) as (string | number)[]);
      if (!node) continue;
      // For an object member, point at its key: that is what a reader looks for.
      const keyNode = node.parent?.type === "property" ? node.parent.children?.[0] : undefined;
      return lineCol(text, (keyNode ?? node).offset);
    }
    return undefined;
  };
}
