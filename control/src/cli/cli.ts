// trellis-server: the control server's administration from its own shell
// (as `headscale users create …`). It opens the server's database itself —
// the data directory or DATABASE_URL, resolved by the server's own
// configuration (config.ts) — and calls the admin functions the console's
// route handlers call, as the local operator: the same rules, the same
// audit entries (actor `local`), and the same announcements of changes (on
// PostgreSQL the outbox reaches every replica; a server on SQLite notices
// another process's commits by itself, sqlite-watch.ts). Nothing here
// decides anything the admin functions decide; commands only turn
// arguments into their input and their answers into text or JSON.
import { parseArgs } from "node:util";
import { DatabaseConfigError, parseDatabaseUrl } from "@trellis/db";
import { createLogger } from "@trellis/log";
import { ConfigError, loadConfig, type ServerConfig } from "../config";
import { ControlError } from "../errors";
import { COMMANDS, GROUPS, type Command } from "./commands";
import { openContext, UsageError, type CliContext, type CliIo } from "./context";

export type { CliIo } from "./context";

export const VERSION = "0.1.0";

export const USAGE = `usage: trellis-server <command> [arguments] [--json]

Administers this Trellis server from its shell: works on the server's database
directly, with the server's configuration (TRELLIS_DATA_DIR, DATABASE_URL; run
it where npm start runs, as the same user), and audited as the local operator.
The server may be running; its nodes see changes within a second or two.

${COMMANDS.map((c) => `  ${c.name.padEnd(18)} ${c.summary}`).join("\n")}

trellis-server <command> --help shows a command's arguments. USER is an email
or a user id; MACHINE a machine's name or id. Every command takes --json: the
API's JSON on stdout, and an error as one line of {"error","message","issues"}
on stderr.
Exit codes: 0 done; 1 bad input or refused (and nothing changed).
`;

function commandHelp(c: Command): string {
  return `usage: trellis-server ${c.name} ${c.synopsis} [--json]\n\n${c.summary}\n${c.details ? `\n${c.details.trimEnd()}\n` : ""}`;
}

function groupHelp(group: string): string {
  const cmds = COMMANDS.filter((c) => c.name.startsWith(`${group} `));
  return `usage: trellis-server ${group} <command> [arguments] [--json]\n\n${cmds
    .map((c) => `  trellis-server ${c.name} ${c.synopsis}`.trimEnd() + `\n      ${c.summary}`)
    .join("\n")}\n\nSee trellis-server ${group} <command> --help for each.\n`;
}

function processIo(): CliIo {
  return {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
    stdin: process.stdin,
  };
}

/**
 * Run one command. Returns the exit code: 0 done, 1 bad input or refused
 * (with one line on stderr, and nothing changed).
 */
export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  const json = argv.includes("--json");
  const fail = (where: string, err: ControlError | Error): number => {
    if (json) {
      const e = ControlError.is(err)
        ? { error: err.code, message: err.message, ...(err.issues ? { issues: err.issues } : {}) }
        : { error: err instanceof UsageError ? "usage" : "configuration", message: err.message };
      io.stderr(`${JSON.stringify(e)}\n`);
    } else {
      // One line per problem (a policy may have several, each at its line:column).
      for (const line of err.message.split("\n")) io.stderr(`${where}: ${line}\n`);
    }
    return 1;
  };

  const [first, second] = argv;
  if (first === undefined)
    return fail("trellis-server", new UsageError("no command given (see trellis-server --help)"));
  if (first === "--help" || first === "-h" || first === "help") {
    io.stdout(USAGE);
    return 0;
  }
  if (first === "--version" || first === "version") {
    io.stdout(`trellis-server ${VERSION}\n`);
    return 0;
  }
  let command = COMMANDS.find((c) => c.name === first);
  let rest = argv.slice(1);
  if (!command && GROUPS.includes(first)) {
    if (second === undefined || second.startsWith("-")) {
      if (second === "--help" || second === "-h") {
        io.stdout(groupHelp(first));
        return 0;
      }
      return fail(
        `trellis-server ${first}`,
        new UsageError(`which command? (see trellis-server ${first} --help)`),
      );
    }
    command = COMMANDS.find((c) => c.name === `${first} ${second}`);
    if (!command) {
      return fail(
        `trellis-server ${first}`,
        new UsageError(`unknown command "${second}" (see trellis-server ${first} --help)`),
      );
    }
    rest = argv.slice(2);
  }
  if (!command) {
    return fail("trellis-server", new UsageError(`unknown command "${first}" (see trellis-server --help)`));
  }
  const where = `trellis-server ${command.name}`;
  if (rest.includes("--help") || rest.includes("-h")) {
    io.stdout(commandHelp(command));
    return 0;
  }

  let parsed: { flags: Record<string, string | boolean | undefined>; args: string[] };
  try {
    parsed = parse(command, rest);
  } catch (err) {
    return fail(where, err as Error);
  }

  const env = io.env ?? process.env;
  const cwd = io.cwd ?? process.cwd();
  let config: ServerConfig;
  try {
    config = loadConfig(env, cwd);
    // The URL's own errors, before anything touches the disk; a relative SQLite path from `cwd`.
    config = { ...config, databaseUrl: parseDatabaseUrl(config.databaseUrl, cwd).url };
  } catch (err) {
    if (err instanceof ConfigError || err instanceof DatabaseConfigError) {
      return fail(`trellis-server`, new Error(`configuration error: ${err.message}`));
    }
    throw err;
  }
  const log = createLogger("trellis-server", env.TRELLIS_LOG_LEVEL);

  let ctx: (CliContext & { close(): Promise<void> }) | null = null;
  try {
    ctx = await openContext(config, log);
    const result = await command.run(ctx, { ...parsed, io, cwd });
    if (json) io.stdout(`${JSON.stringify(result.json, null, 2)}\n`);
    else if (result.text) io.stdout(result.text.endsWith("\n") ? result.text : `${result.text}\n`);
    if (!json && result.note) io.stderr(result.note.endsWith("\n") ? result.note : `${result.note}\n`);
    return result.exitCode ?? 0;
  } catch (err) {
    if (err instanceof UsageError) return fail(where, err);
    const known = ControlError.of(err);
    if (known) return fail(where, command.explain?.(known, parsed) ?? known);
    throw err;
  } finally {
    await ctx?.close();
  }
}

function parse(
  command: Command,
  argv: string[],
): { flags: Record<string, string | boolean | undefined>; args: string[] } {
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: { ...command.options, json: { type: "boolean" } },
      strict: true,
      allowPositionals: true,
    }));
  } catch (err) {
    // Node's messages go on with advice about "--"; the first sentence is the problem.
    throw new UsageError(
      `${(err as Error).message.split(". ")[0]!} (see trellis-server ${command.name} --help)`,
    );
  }
  const names = command.args ?? [];
  const required = names.filter((n) => !n.endsWith("?")).length;
  if (positionals.length < required || positionals.length > names.length) {
    const want = names.map((n) => n.replace(/\?$/, "")).join(" ");
    throw new UsageError(
      names.length === 0
        ? `takes no arguments, got "${positionals.join(" ")}" (see trellis-server ${command.name} --help)`
        : `expected ${want}${positionals.length > names.length ? `, got "${positionals.join(" ")}"` : ""} (see trellis-server ${command.name} --help)`,
    );
  }
  return { flags: values, args: positionals };
}
