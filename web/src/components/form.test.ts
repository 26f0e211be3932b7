import { createElement } from "react";
import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import { FieldError, FormActions, FormErrors, type Failure } from "./form";

const html = (el: Parameters<typeof renderToStaticMarkup>[0]) => renderToStaticMarkup(el);

// A server 400 as parseOr400 words it: the message repeats the first issue.
const invalid: Failure = {
  error: "invalid tailnet settings: name: too long (and 1 more)",
  issues: [
    { path: "name", message: "too long" },
    { path: "relayMap.regions", message: "needs at least one region" },
  ],
};

describe("FormErrors", () => {
  it("shows the message when the error has no issues", () => {
    const out = html(
      createElement(FormErrors, { failure: { error: "a@b.c already has an account", issues: [] } }),
    );
    expect(out).toContain('class="alert alert-error" role="alert"');
    expect(out).toContain("a@b.c already has an account");
  });

  it("shows nothing when every issue is at its field, not the message that repeats them", () => {
    expect(html(createElement(FormErrors, { failure: invalid, fields: ["name", "relayMap"] }))).toBe("");
  });

  it("lists only the issues no field claims, each once", () => {
    const out = html(createElement(FormErrors, { failure: invalid, fields: ["name"] }));
    expect(out).not.toContain("too long");
    expect(out).toContain("<code>relayMap.regions</code> needs at least one region");
    expect(out).not.toContain("<ul>");
    const both = html(createElement(FormErrors, { failure: invalid }));
    expect(both.match(/<li>/g)).toHaveLength(2);
    expect(both).not.toContain("(and 1 more)");
  });

  it("always lists under a lead, and can look like plain text", () => {
    const led = html(
      createElement(FormErrors, { failure: { error: "bad", issues: [] }, lead: "Not saved." }),
    );
    expect(led).toMatch(/Not saved\. <ul><li>bad<\/li><\/ul>/);
    const text = html(createElement(FormErrors, { failure: { error: "bad", issues: [] }, look: "text" }));
    expect(text).toMatch(/^<p class="error" role="alert">/);
  });

  it("shows nothing without an error", () => {
    expect(html(createElement(FormErrors, { failure: null }))).toBe("");
    expect(html(createElement(FormErrors, { failure: { error: null, issues: [] } }))).toBe("");
  });
});

describe("FieldError", () => {
  it("shows the issues at and under its path, naming the rest of the path", () => {
    const out = html(createElement(FieldError, { issues: invalid.issues, path: "relayMap" }));
    expect(out).toBe('<span class="field-error" role="alert">regions: needs at least one region</span>');
  });

  it("leaves out a bare list index, and says a message once however many entries share it", () => {
    const issues = [
      { path: "tags.0", message: "tag:gone is not defined in the policy's tagOwners" },
      { path: "tags.2", message: "must not be empty" },
      { path: "tags.3", message: "must not be empty" },
    ];
    expect(html(createElement(FieldError, { issues, path: "tags" }))).toBe(
      '<span class="field-error" role="alert">' +
        "tag:gone is not defined in the policy&#x27;s tagOwners; must not be empty</span>",
    );
    // A deeper path still names what it is about.
    const nested = [{ path: "relayMap.regions.0.nodes", message: "must not be empty" }];
    expect(html(createElement(FieldError, { issues: nested, path: "relayMap" }))).toContain(
      "regions.0.nodes: must not be empty",
    );
  });

  it("with `exact`, only the issue at its path", () => {
    const issues = [
      { path: "nameservers", message: "at most 8" },
      { path: "nameservers.1", message: "must be an IP address" },
    ];
    expect(html(createElement(FieldError, { issues, path: "nameservers", exact: true, block: true }))).toBe(
      '<p class="field-error" role="alert">at most 8</p>',
    );
    expect(html(createElement(FieldError, { issues, path: "name" }))).toBe("");
  });

  it("prefers the form's own message", () => {
    const out = html(
      createElement(FieldError, { issues: invalid.issues, path: "relayMap", message: "Not valid JSON" }),
    );
    expect(out).toContain(">Not valid JSON<");
  });
});

describe("FormActions", () => {
  it("says what it is doing while busy, and offers Cancel when there is somewhere to go back to", () => {
    const idle = html(createElement(FormActions, { busy: false, submit: "Save", busyLabel: "Saving…" }));
    expect(idle).toBe(
      '<div class="form-actions"><button type="submit" class="btn btn-primary">Save</button></div>',
    );
    const busy = html(
      createElement(FormActions, { busy: true, submit: "Save", busyLabel: "Saving…", onCancel: () => {} }),
    );
    expect(busy).toContain('<button type="submit" class="btn btn-primary" disabled="">Saving…</button>');
    expect(busy).toContain('<button type="button" class="btn btn-secondary">Cancel</button>');
  });
});
