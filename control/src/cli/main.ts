// trellis-server's process: run one command, exit with its code.
import { main } from "./cli";

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  // A bug or a failure nobody can fix from the command line (a 500 at the API).
  process.stderr.write(
    `trellis-server: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exitCode = 1;
}
