// Database tasks for scripts and developers:
//   tsx prisma/src/cli.ts migrate [URL]        apply pending migrations (DATABASE_URL by default)
//   tsx prisma/src/cli.ts drift [URL]          print SQL the database lacks; exit 1 if any
//   tsx prisma/src/cli.ts new-migration NAME   write a migration for both providers
import { createMigration, drift, migrate } from "./migrate";

const [cmd, arg] = process.argv.slice(2);
const url = arg ?? process.env.DATABASE_URL ?? "";

async function main(): Promise<number> {
  switch (cmd) {
    case "migrate": {
      const { applied } = await migrate(url);
      console.log(applied.length ? `applied: ${applied.join(", ")}` : "database is up to date");
      return 0;
    }
    case "drift": {
      const sql = await drift(url);
      if (sql === null) {
        console.log("no drift: the database matches the models");
        return 0;
      }
      console.log(sql);
      return 1;
    }
    case "new-migration": {
      if (!arg) throw new Error("usage: new-migration NAME");
      const folder = await createMigration(arg, process.env.MIGRATION_PG_URL);
      console.log(folder ? `wrote migrations/*/${folder}` : "models unchanged: no migration written");
      return 0;
    }
    default:
      console.error("usage: cli.ts migrate [URL] | drift [URL] | new-migration NAME");
      return 2;
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? `${err.name}: ${err.message}` : err);
    process.exit(1);
  },
);
