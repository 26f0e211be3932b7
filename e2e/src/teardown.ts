// The end of a test file's world: every step runs, even when one before it
// failed (a daemon that would not stop must not keep its namespace alive),
// and the failures are thrown together at the end — a cleanup that failed
// fails the file.

/** Run `steps` in order, each whatever became of the others; throw what failed, together. */
export async function tearDown(...steps: (() => unknown)[]): Promise<void> {
  const errors: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length) throw new AggregateError(errors, "cleanup failed");
}
