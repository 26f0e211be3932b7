import { main } from "./cli";

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`trellis: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
