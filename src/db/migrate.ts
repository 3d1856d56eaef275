// Brings a database to the current schema: applies each missing migration once, in order, in its own transaction.
// Idempotent and safe to run from several starters at once (an advisory lock serialises them).
import { Effect } from "effect"
import type pg from "pg"
import { connect, DbError, toDbError } from "./client.ts"
import type { ConnectOptions } from "./client.ts"
import { MIGRATIONS } from "./schema.ts"
import type { Migration } from "./schema.ts"

/** pg_advisory_lock key held while migrating ("sagews" in ASCII). */
const MIGRATION_LOCK = 0x736167657773

const applyOne = async (client: pg.ClientBase, migration: Migration): Promise<void> => {
  await client.query("BEGIN")
  try {
    await client.query(migration.sql)
    await client.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [migration.version, migration.name])
    await client.query("COMMIT")
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {})
    const message = error instanceof Error ? error.message : String(error)
    throw new Error(`migration ${migration.version} (${migration.name}) failed: ${message}`, { cause: error })
  }
}

/** Applies the missing migrations on a connected client; returns the versions it applied (empty when up to date). */
export const migrateClient = async (
  client: pg.ClientBase,
  migrations: ReadonlyArray<Migration> = MIGRATIONS,
): Promise<ReadonlyArray<number>> => {
  await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK])
  try {
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version int PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`)
    const result = await client.query<{ version: number }>("SELECT version FROM schema_migrations")
    const done = new Set(result.rows.map((row) => row.version))
    const applied: Array<number> = []
    for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
      if (done.has(migration.version)) continue
      await applyOne(client, migration)
      applied.push(migration.version)
    }
    return applied
  } finally {
    await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK]).catch(() => {})
  }
}

/** Connects to `url` and migrates it. */
export const migrate = (url: string, options: ConnectOptions = {}): Effect.Effect<ReadonlyArray<number>, DbError> =>
  Effect.scoped(
    Effect.gen(function*() {
      const client = yield* connect(url, options)
      return yield* Effect.tryPromise({ try: () => migrateClient(client), catch: toDbError("migrate") })
    }),
  )
