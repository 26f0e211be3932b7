// Asynchronous changes of one thing (the routes, the rules, the node) run one
// after another in the order asked: a change waits for the one before it to
// finish, whether that one succeeded or not, and its own failure goes to its
// caller only.
export class Serial {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn);
    this.tail = run.catch(() => undefined);
    return run;
  }
}
