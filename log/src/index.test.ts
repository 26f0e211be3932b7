import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, redactSecrets } from "./index";

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { stream, lines: () => lines.join("") };
}

describe("log redaction", () => {
  it("redacts secrets at any depth, the names the first version missed included", () => {
    const out = capture();
    const log = createLogger("test", "info", out.stream);
    log.info(
      {
        req: {
          body: { preAuthKey: "tskey-SECRET1", hostname: "a" },
          headers: { Authorization: "Bearer SECRET2" },
        },
        config: { relay: { meshKey: "SECRET3" }, oidc: { clientSecret: "SECRET4" } },
        session: { sid: "SECRET5" },
        secret: "SECRET6",
        items: [{ password: "SECRET7" }],
        nodeKey: "nodekey:public",
      },
      "something happened",
    );
    const text = out.lines();
    for (let i = 1; i <= 7; i++) expect(text).not.toContain(`SECRET${i}`);
    expect(text).toContain("nodekey:public");
    expect(text).toContain('"hostname":"a"');
    expect(text).toContain("[redacted]");
  });

  it("leaves objects it does not change untouched, and never mutates its input", () => {
    const clean = { a: 1, b: { c: [1, 2] } };
    expect(redactSecrets(clean)).toBe(clean);
    const dirty = { a: { token: "x" } };
    expect(redactSecrets(dirty)).toEqual({ a: { token: "[redacted]" } });
    expect(dirty.a.token).toBe("x");
    // Nothing deeper than eight levels is written unchecked.
    let deep: Record<string, unknown> = { password: "SECRET" };
    for (let i = 0; i < 12; i++) deep = { inner: deep };
    expect(JSON.stringify(redactSecrets(deep))).not.toContain("SECRET");
  });
});
