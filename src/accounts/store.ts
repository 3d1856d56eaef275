// The accounts' rows in PostgreSQL (migration 4): accounts, web sign-in sessions, API tokens and failed sign-ins, as
// plain queries on a client or pool, shared by the backend's Accounts service and `sagews user`. Times are passed
// in (the callers' Clock), never taken from the database's now(), so tests and backends agree on them.
import type pg from "pg"

/** a pg.Client or pg.Pool */
export type Db = Pick<pg.ClientBase, "query">

export interface Account {
  readonly id: string
  readonly email: string
  readonly name: string | null
}

export interface AccountRow extends Account {
  readonly createdAt: Date
  readonly disabledAt: Date | null
  readonly lastSignInAt: Date | null
}

/** a deliberately loose check: one @, something on both sides, no spaces; the operator typed it */
const EMAIL_SHAPE = /^[^\s@]+@[^\s@]+$/
export const MAX_EMAIL_CHARS = 254

/** emails are kept and compared lowercased and trimmed */
export const normalizeEmail = (email: string): string => email.trim().toLowerCase()

/** undefined when `email` can be an account's email, else what is wrong with it */
export const emailProblem = (email: string): string | undefined =>
  email.length > MAX_EMAIL_CHARS
    ? `an email has at most ${MAX_EMAIL_CHARS} characters, got ${email.length}`
    : EMAIL_SHAPE.test(email) ? undefined : `${JSON.stringify(email)} is not an email address (expected name@host)`

interface Raw {
  readonly id: string
  readonly email: string
  readonly name: string | null
  readonly created_at: Date
  readonly disabled_at: Date | null
  readonly last_sign_in_at: Date | null
}

const account = (r: Pick<Raw, "id" | "email" | "name">): Account => ({ id: r.id, email: r.email, name: r.name })

/** The new account, or "exists" when the email has one already. */
export const addAccount = async (db: Db, a: { email: string; name?: string | undefined; passwordHash: string; now: Date }): Promise<Account | "exists"> => {
  const { rows } = await db.query<Raw>(
    `INSERT INTO accounts (email, name, password_hash, created_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (email) DO NOTHING RETURNING id, email, name`,
    [normalizeEmail(a.email), a.name ?? null, a.passwordHash, a.now],
  )
  return rows[0] !== undefined ? account(rows[0]) : "exists"
}

/** Every account, oldest first. */
export const listAccounts = async (db: Db): Promise<ReadonlyArray<AccountRow>> => {
  const { rows } = await db.query<Raw>("SELECT id, email, name, created_at, disabled_at, last_sign_in_at FROM accounts ORDER BY created_at, email")
  return rows.map((r) => ({ ...account(r), createdAt: r.created_at, disabledAt: r.disabled_at, lastSignInAt: r.last_sign_in_at }))
}

/** Disables the account and ends its web sessions; its API tokens stop working with it. */
export const disableAccount = async (db: Db, email: string, now: Date): Promise<"disabled" | "already" | "unknown"> => {
  const { rows } = await db.query<{ id: string; was: Date | null }>(
    `UPDATE accounts a SET disabled_at = COALESCE(a.disabled_at, $2) FROM accounts old
     WHERE a.id = old.id AND a.email = $1 RETURNING a.id, old.disabled_at AS was`,
    [normalizeEmail(email), now],
  )
  const row = rows[0]
  if (row === undefined) return "unknown"
  await db.query("UPDATE web_sessions SET ended_at = $2 WHERE account_id = $1 AND ended_at IS NULL", [row.id, now])
  return row.was === null ? "disabled" : "already"
}

/** Stores a new API token's hash for the account; "unknown" or "disabled" when it cannot have one. */
export const addApiToken = async (db: Db, email: string, tokenHash: string, now: Date): Promise<Account | "unknown" | "disabled"> => {
  const { rows } = await db.query<Raw>("SELECT id, email, name, disabled_at FROM accounts WHERE email = $1", [normalizeEmail(email)])
  const row = rows[0]
  if (row === undefined) return "unknown"
  if (row.disabled_at !== null) return "disabled"
  await db.query("INSERT INTO api_tokens (token_hash, account_id, created_at) VALUES ($1, $2, $3)", [tokenHash, row.id, now])
  return account(row)
}

export interface SignInRow extends Account {
  readonly passwordHash: string | null
  readonly disabled: boolean
}

export const findForSignIn = async (db: Db, email: string): Promise<SignInRow | undefined> => {
  const { rows } = await db.query<Raw & { password_hash: string | null }>(
    "SELECT id, email, name, password_hash, disabled_at FROM accounts WHERE email = $1",
    [normalizeEmail(email)],
  )
  const row = rows[0]
  return row === undefined ? undefined : { ...account(row), passwordHash: row.password_hash, disabled: row.disabled_at !== null }
}

export const startWebSession = async (db: Db, s: { idHash: string; accountId: string; address: string; now: Date; expiresAt: Date }): Promise<void> => {
  await db.query("INSERT INTO web_sessions (id_hash, account_id, address, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)", [s.idHash, s.accountId, s.address, s.now, s.expiresAt])
  await db.query("UPDATE accounts SET last_sign_in_at = $2 WHERE id = $1", [s.accountId, s.now])
}

/** The account of a web session that is neither ended nor expired, and whose account is not disabled. */
export const webSessionAccount = async (db: Db, idHash: string, now: Date): Promise<Account | undefined> => {
  const { rows } = await db.query<Raw>(
    `SELECT a.id, a.email, a.name FROM web_sessions s JOIN accounts a ON a.id = s.account_id
     WHERE s.id_hash = $1 AND s.ended_at IS NULL AND s.expires_at > $2 AND a.disabled_at IS NULL`,
    [idHash, now],
  )
  return rows[0] !== undefined ? account(rows[0]) : undefined
}

export const endWebSession = async (db: Db, idHash: string, now: Date): Promise<void> => {
  await db.query("UPDATE web_sessions SET ended_at = $2 WHERE id_hash = $1 AND ended_at IS NULL", [idHash, now])
}

/** The account of an API token that is not revoked, whose account is not disabled; notes when it was last used. */
export const apiTokenAccount = async (db: Db, tokenHash: string, now: Date): Promise<Account | undefined> => {
  const { rows } = await db.query<Raw>(
    `UPDATE api_tokens t SET last_used_at = $2 FROM accounts a
     WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND a.id = t.account_id AND a.disabled_at IS NULL
     RETURNING a.id, a.email, a.name`,
    [tokenHash, now],
  )
  return rows[0] !== undefined ? account(rows[0]) : undefined
}

/** The times of `key`'s newest failed sign-ins since `since`, at most `limit`, newest first. */
export const recentFailures = async (db: Db, key: string, since: Date, limit: number): Promise<ReadonlyArray<Date>> => {
  const { rows } = await db.query<{ at: Date }>("SELECT at FROM sign_in_failures WHERE key = $1 AND at > $2 ORDER BY at DESC LIMIT $3", [key, since, limit])
  return rows.map((r) => r.at)
}

/** Records a failed sign-in under each key, and forgets those keys' failures from before `since`. */
export const recordFailure = async (db: Db, keys: ReadonlyArray<string>, now: Date, since: Date): Promise<void> => {
  await db.query("DELETE FROM sign_in_failures WHERE key = ANY($1) AND at <= $2", [keys, since])
  await db.query("INSERT INTO sign_in_failures (key, at) SELECT unnest($1::text[]), $2", [keys, now])
}

/** Forgets `key`'s failures (a successful sign-in clears its email's). */
export const clearFailures = async (db: Db, key: string): Promise<void> => {
  await db.query("DELETE FROM sign_in_failures WHERE key = $1", [key])
}
