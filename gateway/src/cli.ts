// trellis: the node daemon's command line.
import { parseArgs } from "node:util";
import { NodeIdentity } from "@trellis/client";

const VERSION = "0.1.0";
const DEFAULT_STATE_DIR = process.env.TRELLIS_STATE_DIR ?? "/var/lib/trellis";

const USAGE = `usage: trellis <command> [options]

commands:
  version                     print the version
  key [--state-dir DIR]       print this node's public key (creating the key on first use)

The state directory (default ${DEFAULT_STATE_DIR}, or TRELLIS_STATE_DIR) holds the
node's private key, mode 0600; the key never leaves this machine.
`;

export function run(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s)): number {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case "version":
    case "--version":
      out(`trellis ${VERSION}\n`);
      return 0;
    case "key": {
      const { values } = parseArgs({
        args: rest,
        options: { "state-dir": { type: "string", default: DEFAULT_STATE_DIR } },
        strict: true,
      });
      const id = NodeIdentity.loadOrCreate(values["state-dir"]!);
      out(`${id.publicKey}\n`);
      return 0;
    }
    case undefined:
    case "help":
    case "--help":
    case "-h":
      out(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      process.stderr.write(`trellis: unknown command "${cmd}"\n\n${USAGE}`);
      return 2;
  }
}
