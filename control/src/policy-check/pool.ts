// Policy checks off the event loop. Parsing, validating and running the
// tests of a policy of up to 1 MiB takes up to a second of CPU (more with
// many tests over a large tailnet), and the process that does it also serves
// the control API, map streams and the relay. `POST /api/v1/policy/validate`
// needs only policy:read, so checks run in a small pool of worker threads:
// at most `workers` at once, at most `maxQueue` waiting (more are refused
// with 503 and Retry-After), each stopped after `timeoutMs` (its worker is
// terminated) and confined to `maxMemoryMb` of heap.
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { PolicyError, type Policy, type Topology } from "@trellis/policy";
import { ControlError } from "../errors";
import type { CheckReply, CheckRequest } from "./job";

export interface PolicyCheckerOptions {
  /** Worker threads at most (default: one per core beyond the first, 1 or 2). */
  workers?: number;
  /** Checks that may wait for a worker; more are refused with 503 (default 8). */
  maxQueue?: number;
  /** A check running longer is stopped, its worker terminated (default 20 s). */
  timeoutMs?: number;
  /** Longest wait for a new worker to load (default 60 s). */
  startTimeoutMs?: number;
  /** Heap limit of a worker (old generation, default 512 MiB). */
  maxMemoryMb?: number;
  /** An idle worker exits after this long (default 60 s); the next check starts one. */
  idleMs?: number;
  /** The worker script (tests substitute a slow one). */
  entry?: string;
}

/** Checks a policy text against a tailnet as a save would (admin/context.ts). */
export interface PolicyCheck {
  /**
   * Resolves with the parsed policy when `wantPolicy`, rejects with a
   * PolicyError listing the problems, or with a ControlError (503) when busy
   * or over time.
   */
  check(
    text: string,
    topology: Topology,
    opts: { source: string; wantPolicy: boolean },
  ): Promise<Policy | undefined>;
}

interface Job {
  req: CheckRequest;
  resolve(policy: Policy | undefined): void;
  reject(err: unknown): void;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  job: Job | null;
  timer: NodeJS.Timeout | null;
  /** Set once the pool has let go of the worker (terminated, exited or failed). */
  gone: boolean;
}

/** Seconds a refused caller is told to wait. */
const BUSY_RETRY_SEC = 2;

const DEFAULT_ENTRY = join(dirname(fileURLToPath(import.meta.url)), "worker.mjs");

export class PolicyChecker implements PolicyCheck {
  private readonly size: number;
  private readonly maxQueue: number;
  private readonly timeoutMs: number;
  private readonly startTimeoutMs: number;
  private readonly maxMemoryMb: number;
  private readonly idleMs: number;
  private readonly entry: string;
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  private closed = false;

  constructor(opts: PolicyCheckerOptions = {}) {
    this.size = Math.max(1, opts.workers ?? Math.min(2, availableParallelism() - 1));
    this.maxQueue = Math.max(0, opts.maxQueue ?? 8);
    this.timeoutMs = opts.timeoutMs ?? 20_000;
    this.startTimeoutMs = opts.startTimeoutMs ?? 60_000;
    this.maxMemoryMb = opts.maxMemoryMb ?? 512;
    this.idleMs = opts.idleMs ?? 60_000;
    this.entry = opts.entry ?? DEFAULT_ENTRY;
  }

  /** Checks running and waiting. */
  get pending(): number {
    return this.queue.length + this.slots.filter((s) => s.job).length;
  }

  check(
    text: string,
    topology: Topology,
    opts: { source: string; wantPolicy: boolean },
  ): Promise<Policy | undefined> {
    if (this.closed) return Promise.reject(new Error("the policy checker is closed"));
    const idle = this.slots.find((s) => s.ready && !s.job && !s.gone);
    if (!idle && this.queue.length >= this.maxQueue) {
      return Promise.reject(
        new ControlError(
          "policy_check_busy",
          503,
          "too many policy checks are running; try again shortly",
          undefined,
          BUSY_RETRY_SEC,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      const job: Job = { req: { id: this.nextId++, text, topology, ...opts }, resolve, reject };
      if (idle) this.run(idle, job);
      else {
        this.queue.push(job);
        this.pump();
      }
    });
  }

  /** Refuse what waits and stop every worker. */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new Error("the policy checker is closed"));
    await Promise.all(
      this.slots.map((s) => {
        s.job?.reject(new Error("the policy checker is closed"));
        s.job = null;
        return this.drop(s);
      }),
    );
  }

  /** Give waiting checks to idle workers, and start workers while checks wait and there is room. */
  private pump(): void {
    if (this.closed) return;
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (slot.ready && !slot.job && !slot.gone) this.run(slot, this.queue.shift()!);
    }
    const starting = this.slots.filter((s) => !s.ready && !s.gone).length;
    if (this.queue.length > starting && this.slots.length < this.size) this.spawn();
  }

  private spawn(): void {
    const worker = new Worker(this.entry, {
      resourceLimits: { maxOldGenerationSizeMb: this.maxMemoryMb },
      stdout: false,
      stderr: false,
    });
    const slot: Slot = { worker, ready: false, job: null, timer: null, gone: false };
    this.slots.push(slot);
    this.arm(slot, this.startTimeoutMs, () => this.fail(slot, startFailed("it did not start in time")));
    worker.on("message", (msg: CheckReply | { ready: true }) => {
      if (slot.gone) return;
      if ("ready" in msg) {
        slot.ready = true;
        this.idle(slot);
        this.pump();
        return;
      }
      const job = slot.job;
      if (!job || job.req.id !== msg.id) return;
      slot.job = null;
      this.idle(slot);
      settle(job, msg);
      this.pump();
    });
    worker.on("error", (err) => {
      const oom = (err as { code?: string }).code === "ERR_WORKER_OUT_OF_MEMORY";
      this.fail(
        slot,
        oom
          ? new ControlError(
              "policy_check_failed",
              503,
              `checking the policy needed more than ${this.maxMemoryMb} MiB and was stopped; nothing was changed`,
            )
          : slot.ready
            ? err
            : startFailed(err.message),
      );
    });
    worker.on("exit", (code) => this.fail(slot, startFailed(`its worker exited (code ${code})`)));
  }

  private run(slot: Slot, job: Job): void {
    slot.job = job;
    slot.worker.ref();
    this.arm(slot, this.timeoutMs, () => {
      const secs = Math.round(this.timeoutMs / 100) / 10;
      this.fail(
        slot,
        new ControlError(
          "policy_check_timeout",
          503,
          `checking the policy took longer than ${secs} s and was stopped; nothing was changed`,
        ),
      );
    });
    try {
      // Cloned here, on this thread: linear in the text and the tailnet.
      slot.worker.postMessage(job.req);
    } catch (err) {
      this.fail(slot, err);
    }
  }

  /** An idle worker keeps no process alive, and exits after idleMs. */
  private idle(slot: Slot): void {
    slot.worker.unref();
    this.arm(slot, this.idleMs, () => void this.drop(slot));
  }

  private arm(slot: Slot, ms: number, fn: () => void): void {
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = setTimeout(fn, ms);
    slot.timer.unref();
  }

  /**
   * A worker that failed, timed out or exited: its check (if any) gets
   * `err`, and if it never became ready, so do the checks waiting for it
   * (a worker that cannot start would fail them all alike). Waiting checks
   * otherwise get a new worker.
   */
  private fail(slot: Slot, err: unknown): void {
    if (slot.gone) return;
    const job = slot.job;
    slot.job = null;
    void this.drop(slot);
    if (job) job.reject(err);
    else if (!slot.ready && !this.slots.some((s) => s.ready)) {
      for (const waiting of this.queue.splice(0)) waiting.reject(err);
    }
    this.pump();
  }

  private drop(slot: Slot): Promise<unknown> {
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = null;
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    if (slot.gone) return Promise.resolve();
    slot.gone = true;
    return slot.worker.terminate();
  }
}

function startFailed(why: string): ControlError {
  return new ControlError("policy_check_failed", 503, `the policy could not be checked: ${why}`);
}

function settle(job: Job, reply: CheckReply): void {
  if (reply.ok) job.resolve(reply.policy);
  else if ("policyError" in reply) job.reject(PolicyError.fromParts(reply.policyError));
  else job.reject(new Error(`policy check failed in its worker: ${reply.crash}`));
}

let shared: PolicyChecker | null = null;

/**
 * The process's one pool (every ControlRuntime of a process shares it; its
 * idle workers keep nothing alive and exit on their own).
 */
export function sharedPolicyChecker(): PolicyChecker {
  shared ??= new PolicyChecker();
  return shared;
}
