// The backend's Accounts service: checks passwords, starts, finds and ends web sessions, finds API tokens' accounts
// and keeps the failed sign-ins the rate limit counts, in PostgreSQL at the backend's --db (store.ts); time from
// Clock. A backend without a database has no accounts: every call fails with reason NoDatabase.
import pg from "pg"
import { Clock, Context, Data, Duration, Effect, Layer } from "effect"
import { Options } from "../backend/options.ts"
import { decoyHash, verifyPassword } from "./password.ts"
import * as store from "./store.ts"
import type { Account } from "./store.ts"
import { newSecret, secretHash } from "./tokens.ts"

/** a handful of connections: a sign-in or a session lookup is one or two short queries; fail fast when PostgreSQL is away */
const POOL = { max: 4, connectionTimeoutMillis: 2_000, query_timeout: 5_000, idleTimeoutMillis: 10_000 }
/** how long stopping waits for the pool's connections to close */
const CLOSE_GRACE = Duration.seconds(1)

/** An accounts call failed: the backend has no database (NoDatabase), PostgreSQL is away (Unavailable), or refused the query (Query). */
export class AccountsError extends Data.TaggedError("AccountsError")<{
  readonly operation: string
  readonly reason: "NoDatabase" | "Unavailable" | "Query"
  readonly detail: string
}> {
  override get message(): string {
    return this.reason === "NoDatabase"
      ? "accounts need PostgreSQL, and this backend runs without one (--db)"
      : `accounts: ${this.operation} failed: ${this.detail}`
  }
}

export interface WebSession {
  /** the secret the cookie carries; PostgreSQL has only its hash */
  readonly id: string
  readonly account: Account
  /** ms since the epoch */
  readonly expiresAt: number
}

export interface AccountsService {
  /** the account when `password` is its password and it is not disabled; as slow for an unknown email as for a known one */
  checkPassword(email: string, password: string): Effect.Effect<Account | undefined, AccountsError>
  startSession(account: Account, address: string, maxAgeMs: number): Effect.Effect<WebSession, AccountsError>
  sessionAccount(id: string): Effect.Effect<Account | undefined, AccountsError>
  endSession(id: string): Effect.Effect<void, AccountsError>
  tokenAccount(token: string): Effect.Effect<Account | undefined, AccountsError>
  /** the newest `limit` failed sign-ins of `key` in the last `windowMs`, as ms since the epoch, newest first */
  recentFailures(key: string, windowMs: number, limit: number): Effect.Effect<ReadonlyArray<number>, AccountsError>
  recordFailure(keys: ReadonlyArray<string>, windowMs: number): Effect.Effect<void, AccountsError>
  clearFailures(key: string): Effect.Effect<void, AccountsError>
}

const noDatabase = (operation: string) => Effect.fail(new AccountsError({ operation, reason: "NoDatabase", detail: "no --db" }))

export const unavailableAccounts: AccountsService = {
  checkPassword: () => noDatabase("checkPassword"),
  startSession: () => noDatabase("startSession"),
  sessionAccount: () => Effect.succeed(undefined),
  endSession: () => Effect.void,
  tokenAccount: () => Effect.succeed(undefined),
  recentFailures: () => noDatabase("recentFailures"),
  recordFailure: () => noDatabase("recordFailure"),
  clearFailures: () => noDatabase("clearFailures"),
}

export const postgresAccounts = (pool: store.Db): AccountsService => {
  const run = <A>(operation: string, f: () => Promise<A>): Effect.Effect<A, AccountsError> =>
    Effect.tryPromise({
      try: f,
      catch: (e) => new AccountsError({ operation, reason: e instanceof pg.DatabaseError ? "Query" : "Unavailable", detail: e instanceof Error ? e.message : String(e) }),
    })
  const now = Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms))
  return {
    checkPassword: Effect.fn("Accounts.checkPassword")(function*(email: string, password: string) {
      const row = yield* run("find the account", () => store.findForSignIn(pool, email))
      const hash = row?.passwordHash ?? (yield* Effect.promise(decoyHash))
      const ok = yield* Effect.promise(() => verifyPassword(password, hash))
      return row !== undefined && row.passwordHash !== null && ok && !row.disabled ? { id: row.id, email: row.email, name: row.name } : undefined
    }),
    startSession: Effect.fn("Accounts.startSession")(function*(account: Account, address: string, maxAgeMs: number) {
      const at = yield* now
      const id = newSecret()
      const expiresAt = at.getTime() + maxAgeMs
      yield* run("start a web session", () => store.startWebSession(pool, { idHash: secretHash(id), accountId: account.id, address, now: at, expiresAt: new Date(expiresAt) }))
      return { id, account, expiresAt }
    }),
    sessionAccount: (id) => Effect.flatMap(now, (at) => run("find a web session", () => store.webSessionAccount(pool, secretHash(id), at))),
    endSession: (id) => Effect.flatMap(now, (at) => run("end a web session", () => store.endWebSession(pool, secretHash(id), at))),
    tokenAccount: (token) => Effect.flatMap(now, (at) => run("find an API token", () => store.apiTokenAccount(pool, secretHash(token), at))),
    recentFailures: (key, windowMs, limit) =>
      Effect.flatMap(now, (at) =>
        run("count failed sign-ins", () => store.recentFailures(pool, key, new Date(at.getTime() - windowMs), limit)).pipe(Effect.map((dates) => dates.map((d) => d.getTime()))),
      ),
    recordFailure: (keys, windowMs) => Effect.flatMap(now, (at) => run("record a failed sign-in", () => store.recordFailure(pool, keys, at, new Date(at.getTime() - windowMs)))),
    clearFailures: (key) => run("clear failed sign-ins", () => store.clearFailures(pool, key)),
  }
}

export class Accounts extends Context.Service<Accounts, AccountsService>()("sagews/accounts/Accounts") {
  /** PostgreSQL at --db (its pool ended with the layer, waiting at most CLOSE_GRACE), or no accounts at all */
  static readonly layer = Layer.effect(Accounts, Effect.gen(function*() {
    const { db } = yield* Options
    if (db === undefined) return unavailableAccounts
    const pool = yield* Effect.acquireRelease(
      Effect.gen(function*() {
        const pool = new pg.Pool({ connectionString: db, ...POOL })
        const context = yield* Effect.context<never>()
        pool.on("error", (e) => Effect.runForkWith(context)(Effect.logWarning(`accounts connection: ${e.message}`)))
        return pool
      }),
      (pool) => Effect.ignore(Effect.timeoutOption(Effect.tryPromise(() => pool.end()), CLOSE_GRACE)),
    )
    return postgresAccounts(pool)
  }))
}
