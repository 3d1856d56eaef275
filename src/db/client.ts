// Opening PostgreSQL connections as scoped Effect resources, and the one error a database call fails with.
// Deep imports keep logwatch's start-up short (the "effect" barrel loads every module).
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type { Scope } from "effect"
import pg from "pg"
import { databaseOf, withDatabase } from "./url.ts"

/** A failed database call: what was being done, and PostgreSQL's (or the socket's) message. */
export class DbError extends Data.TaggedError("DbError")<{
  readonly operation: string
  readonly message: string
  /** PostgreSQL's SQLSTATE when there is one (e.g. 57P01 admin shutdown) */
  readonly code?: string | undefined
}> {}

/** ms to wait for a connection before giving up (PostgreSQL down or hung). */
export const CONNECT_TIMEOUT = 3_000
/** ms a single query may take on the client side. */
export const QUERY_TIMEOUT = 30_000

export const toDbError = (operation: string) => (error: unknown): DbError => {
  const code = typeof error === "object" && error !== null && "code" in error && typeof error.code === "string"
    ? error.code
    : undefined
  return new DbError({ operation, message: error instanceof Error ? error.message : String(error), code })
}

export interface ConnectOptions {
  readonly connectTimeout?: number
  readonly queryTimeout?: number
}

/** A connected client; an idle connection's later failure is reported to `onError` instead of crashing the process. */
export const connectRaw = async (
  url: string,
  options: ConnectOptions = {},
  onError: (error: Error) => void = () => {},
): Promise<pg.Client> => {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: options.connectTimeout ?? CONNECT_TIMEOUT,
    query_timeout: options.queryTimeout ?? QUERY_TIMEOUT,
  })
  client.on("error", onError)
  try {
    await client.connect()
  } catch (error) {
    await closeClient(client)
    throw error
  }
  return client
}

/** ms to wait for a polite goodbye before the socket is destroyed */
const END_TIMEOUT = 1_000

/**
 * Closes a client whatever state it is in. pg's `end()` never resolves when the server already went away,
 * so it gets END_TIMEOUT ms and then nothing more is waited for.
 */
export const closeClient = async (client: pg.Client): Promise<void> => {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    client.end().catch(() => {}),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, END_TIMEOUT))),
  ])
  clearTimeout(timer)
}

/** A client that lives as long as the enclosing scope. */
export const connect = (url: string, options: ConnectOptions = {}): Effect.Effect<pg.Client, DbError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({ try: () => connectRaw(url, options), catch: toDbError(`connect to ${redact(url)}`) }),
    (client) => Effect.promise(() => closeClient(client)),
  )

export const query = (client: pg.ClientBase, sql: string, params: ReadonlyArray<unknown> = []) =>
  Effect.tryPromise({ try: () => client.query(sql, [...params]), catch: toDbError(sql.split("\n")[0] ?? sql) })

/** Creates the URL's database when it is missing (connecting to the server's `postgres` database to do so). */
export const ensureDatabase = (url: string, options: ConnectOptions = {}): Effect.Effect<boolean, DbError> =>
  Effect.scoped(
    Effect.gen(function*() {
      const name = databaseOf(url)
      const admin = yield* connect(withDatabase(url, "postgres"), options)
      const found = yield* query(admin, "SELECT 1 FROM pg_database WHERE datname = $1", [name])
      if (found.rowCount !== 0) return false
      const created = yield* Effect.result(query(admin, `CREATE DATABASE ${quoteIdent(name)}`))
      // Another starter may have created it between the check and the CREATE: 42P04 duplicate_database.
      if (created._tag === "Failure" && created.failure.code !== "42P04") return yield* created.failure
      return created._tag === "Success"
    }),
  )

export const quoteIdent = (name: string): string => `"${name.replaceAll(`"`, `""`)}"`

/** The URL without its password, for messages. */
export const redact = (url: string): string => {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = "***"
    return parsed.toString()
  } catch {
    return "<invalid database URL>"
  }
}
