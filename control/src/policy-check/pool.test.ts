import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import {
  EMPTY_TOPOLOGY,
  MAX_ISSUES,
  parsePolicy,
  PolicyError,
  validatePolicy,
  type Policy,
} from "@trellis/policy";
import { ControlError } from "../errors";
import { errorReply } from "../http/errors";
import { createLogger } from "@trellis/log";
import { PolicyChecker } from "./pool";

const checkers: PolicyChecker[] = [];
afterEach(async () => {
  await Promise.all(checkers.splice(0).map((c) => c.close()));
});

function checker(opts: ConstructorParameters<typeof PolicyChecker>[0] = {}): PolicyChecker {
  const c = new PolicyChecker(opts);
  checkers.push(c);
  return c;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

function inThread(text: string): PolicyError {
  try {
    validatePolicy(text, { source: "policy", topology: EMPTY_TOPOLOGY });
  } catch (err) {
    if (PolicyError.is(err)) return err;
    throw err;
  }
  throw new Error("expected a PolicyError");
}

/** A policy of ~`n` ACLs naming groups that do not exist: one issue each, located by line. */
function manyErrors(n: number): string {
  const acls = Array.from(
    { length: n },
    (_, i) => `    {"action": "accept", "src": ["group:g${i}"], "dst": ["*:*"]},`,
  );
  return `{\n  "acls": [\n${acls.join("\n")}\n  ],\n}\n`;
}

const ALLOW = `{
  // comment
  "groups": { "group:eng": ["alice@example.com"] },
  "hosts": { "db": "10.1.2.3" },
  "tagOwners": { "tag:web": ["group:eng"] },
  "acls": [
    { "action": "accept", "src": ["group:eng"], "dst": ["tag:web:443", "db:5432"] },
  ],
  "ssh": [{ "action": "accept", "src": ["group:eng"], "dst": ["tag:web"], "users": ["root"] }],
  "tests": [{ "src": "alice@example.com", "deny": ["db:22"] }],
}`;

describe("policy checks in worker threads", () => {
  it("answer as a check on this thread does: the parsed policy, or the same PolicyError", async () => {
    const c = checker({ workers: 1 });
    const policy = await c.check(ALLOW, EMPTY_TOPOLOGY, { source: "policy", wantPolicy: true });
    expect(policy).toEqual<Policy>(parsePolicy(ALLOW));
    expect(await c.check(ALLOW, EMPTY_TOPOLOGY, { source: "policy", wantPolicy: false })).toBeUndefined();

    for (const bad of [
      '{"acls": [',
      '{"acls": [{"action": "accept", "src": ["group:x"], "dst": ["*:*"]}]}',
    ]) {
      const err = await rejection(c.check(bad, EMPTY_TOPOLOGY, { source: "policy", wantPolicy: false }));
      expect(PolicyError.is(err)).toBe(true);
      const want = inThread(bad);
      expect(err).toMatchObject({
        code: want.code,
        kind: want.kind,
        message: want.message,
        problems: want.problems,
      });
    }
  });

  it("check a policy with thousands of errors to completion, listing the first ones and counting the rest", async () => {
    const c = checker({ workers: 1 });
    const text = manyErrors(5000);
    const err = (await rejection(
      c.check(text, EMPTY_TOPOLOGY, { source: "policy", wantPolicy: false }),
    )) as PolicyError;
    expect(PolicyError.is(err)).toBe(true);
    expect(err.problems).toHaveLength(MAX_ISSUES + 1);
    expect(err.problems[0]).toMatchObject({ path: "acls[0].src[0]", line: 3 });
    expect(err.problems[MAX_ISSUES - 1]).toMatchObject({ line: MAX_ISSUES + 2 });
    expect(err.problems[MAX_ISSUES]!.message).toBe(`and ${5000 - MAX_ISSUES} more problems not listed`);
    expect(err.notListed).toBe(5000 - MAX_ISSUES);
    expect(err.message).toBe(inThread(text).message);
  });

  it("leave the event loop free while a large policy is checked", async () => {
    const c = checker({ workers: 1 });
    // A worker is started and loaded first: what is measured is the check alone.
    await c.check("{}", EMPTY_TOPOLOGY, { source: "policy", wantPolicy: false });
    const text = manyErrors(20_000);
    let done = false;
    let ticks = 0;
    let last = performance.now();
    let longestStall = 0;
    const tick = () => {
      const now = performance.now();
      longestStall = Math.max(longestStall, now - last);
      last = now;
      ticks++;
      if (!done) setImmediate(tick);
    };
    const started = performance.now();
    const check = c.check(text, EMPTY_TOPOLOGY, { source: "policy", wantPolicy: false }).then(
      () => "valid",
      (err: unknown) => (PolicyError.is(err) ? "invalid" : "failed"),
    );
    // Scheduled while the check runs: on this thread, it could only run once the check was over.
    setImmediate(tick);
    const ranBeforeTheAnswer = await Promise.race([
      new Promise<boolean>((resolve) => setImmediate(() => resolve(true))),
      check.then(() => false),
    ]);
    const outcome = await check;
    const took = performance.now() - started;
    done = true;
    expect(outcome).toBe("invalid");
    expect(ranBeforeTheAnswer).toBe(true);
    expect(ticks).toBeGreaterThan(1);
    // Relative, not a time limit: no single stall of this thread took half of the check.
    expect(longestStall).toBeLessThan(took / 2);
  });

  it("refuse a check with 503 and Retry-After when every worker is busy and the queue is full", async () => {
    const stuck = fileURLToPath(new URL("./testing/stuck-worker.mjs", import.meta.url));
    const c = checker({ workers: 1, maxQueue: 1, entry: stuck, timeoutMs: 60_000 });
    const first = c.check("{}", EMPTY_TOPOLOGY, { source: "policy", wantPolicy: false });
    first.catch(() => {});
    const busy = await rejection(c.check("{}", EMPTY_TOPOLOGY, { source: "policy", wantPolicy: false }));
    expect(ControlError.is(busy)).toBe(true);
    expect(busy).toMatchObject({ status: 503, code: "policy_check_busy", retryAfterSec: 2 });
    const reply = errorReply(busy, createLogger("test", "silent"), "POST /api/v1/policy/validate");
    expect(reply.status).toBe(503);
    expect(reply.headers["retry-after"]).toBe("2");
    expect(reply.body).toMatchObject({ error: "policy_check_busy" });
  });

  it("stop a check over its time limit, terminating its worker, and check the next one with a fresh worker", async () => {
    const stuck = fileURLToPath(new URL("./testing/stuck-worker.mjs", import.meta.url));
    const c = checker({ workers: 1, entry: stuck, timeoutMs: 300 });
    const err = await rejection(c.check("{}", EMPTY_TOPOLOGY, { source: "policy", wantPolicy: false }));
    expect(err).toMatchObject({ status: 503, code: "policy_check_timeout" });
    expect((err as Error).message).toMatch(/took longer than 0\.3 s and was stopped; nothing was changed/);
    expect(c.pending).toBe(0);
    // The spinning worker is gone (a terminated thread); the next check gets its own and times out alike.
    const again = await rejection(c.check("{}", EMPTY_TOPOLOGY, { source: "policy", wantPolicy: false }));
    expect(again).toMatchObject({ code: "policy_check_timeout" });
  });
});
