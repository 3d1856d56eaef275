// Which account a person signing in through a provider is (migration 8's account_identities): the account already
// linked to the provider's (issuer, subject), else the account of the email the provider has verified, else a new
// account for that email; the identity is recorded either way. Times from Clock; PostgreSQL at the backend's --db.
import pg from "pg"
import { Clock, Context, Duration, Effect, Layer } from "effect"
import { Options } from "../backend/options.ts"
import { AccountsError } from "./service.ts"
import { type Account, type Db, normalizeEmail } from "./store.ts"
import type { ProviderIdentity } from "./oidc.ts"

/** one sign-in is a short transaction of a few queries; sign-ins through providers are rare beside session lookups */
const POOL = { max: 2, connectionTimeoutMillis: 2_000, query_timeout: 5_000, idleTimeoutMillis: 10_000 }
const CLOSE_GRACE = Duration.seconds(1)

export type Linked =
  | { readonly type: "account"; readonly account: Account; readonly disabled: boolean; readonly how: "identity" | "email" | "created" }
  /** the provider gave no email, and accounts are kept by email */
  | { readonly type: "no-email" }
  /** the provider did not say it verified the email: using it could hand someone else's account over */
  | { readonly type: "unverified-email"; readonly email: string }

interface Row {
  readonly id: string
  readonly email: string
  readonly name: string | null
  readonly disabled_at: Date | null
}

const linked = (r: Row, how: "identity" | "email" | "created"): Linked =>
  ({ type: "account", account: { id: r.id, email: r.email, name: r.name }, disabled: r.disabled_at !== null, how })

/** The account for `who`, in one transaction on `db` (a client of its own: BEGIN ... COMMIT). */
export const linkIdentity = async (db: Db, who: ProviderIdentity, now: Date): Promise<Linked> => {
  const known = await db.query<Row>(
    `SELECT a.id, a.email, a.name, a.disabled_at FROM account_identities i JOIN accounts a ON a.id = i.account_id
     WHERE i.issuer = $1 AND i.subject = $2`,
    [who.issuer, who.subject],
  )
  if (known.rows[0] !== undefined) {
    await db.query("UPDATE account_identities SET email = $3, last_sign_in_at = $4 WHERE issuer = $1 AND subject = $2", [who.issuer, who.subject, who.email ?? null, now])
    return linked(known.rows[0], "identity")
  }
  if (who.email === undefined) return { type: "no-email" }
  if (!who.emailVerified) return { type: "unverified-email", email: who.email }
  const email = normalizeEmail(who.email)
  const made = await db.query<Row>(
    `INSERT INTO accounts (email, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (email) DO NOTHING RETURNING id, email, name, disabled_at`,
    [email, who.name ?? null, now],
  )
  const row = made.rows[0] ?? (await db.query<Row>("SELECT id, email, name, disabled_at FROM accounts WHERE email = $1", [email])).rows[0]
  if (row === undefined) throw new Error(`the account of ${email} was neither made nor found`)
  await db.query(
    `INSERT INTO account_identities (issuer, subject, account_id, email, created_at, last_sign_in_at) VALUES ($1, $2, $3, $4, $5, $5)
     ON CONFLICT (issuer, subject) DO UPDATE SET email = EXCLUDED.email, last_sign_in_at = EXCLUDED.last_sign_in_at`,
    [who.issuer, who.subject, row.id, who.email, now],
  )
  return linked(row, made.rows[0] !== undefined ? "created" : "email")
}

export interface LinkedAccountsService {
  link(who: ProviderIdentity): Effect.Effect<Linked, AccountsError>
}

export const postgresLinkedAccounts = (pool: pg.Pool): LinkedAccountsService => ({
  link: Effect.fn("LinkedAccounts.link")(function*(who: ProviderIdentity) {
    const now = new Date(yield* Clock.currentTimeMillis)
    return yield* Effect.tryPromise({
      try: async () => {
        const c = await pool.connect()
        try {
          await c.query("BEGIN")
          const result = await linkIdentity(c, who, now)
          await c.query("COMMIT")
          return result
        } catch (e) {
          await c.query("ROLLBACK").catch(() => undefined)
          throw e
        } finally {
          c.release()
        }
      },
      catch: (e) => new AccountsError({ operation: "link a provider's identity", reason: e instanceof pg.DatabaseError ? "Query" : "Unavailable", detail: e instanceof Error ? e.message : String(e) }),
    })
  }),
})

export class LinkedAccounts extends Context.Service<LinkedAccounts, LinkedAccountsService>()("sagews/accounts/LinkedAccounts") {
  /** PostgreSQL at --db (a small pool of its own, ended with the layer), or a service that fails with NoDatabase */
  static readonly layer = Layer.effect(LinkedAccounts, Effect.gen(function*() {
    const { db } = yield* Options
    if (db === undefined) {
      return { link: () => Effect.fail(new AccountsError({ operation: "link a provider's identity", reason: "NoDatabase", detail: "no --db" })) } satisfies LinkedAccountsService
    }
    const pool = yield* Effect.acquireRelease(
      Effect.gen(function*() {
        const pool = new pg.Pool({ connectionString: db, ...POOL })
        const context = yield* Effect.context<never>()
        pool.on("error", (e) => Effect.runForkWith(context)(Effect.logWarning(`identities connection: ${e.message}`)))
        return pool
      }),
      (pool) => Effect.ignore(Effect.timeoutOption(Effect.tryPromise(() => pool.end()), CLOSE_GRACE)),
    )
    return postgresLinkedAccounts(pool)
  }))
}
