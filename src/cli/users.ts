// `sagews user add EMAIL` (password from stdin), `user list [--json]`, `user disable EMAIL`, `user token EMAIL`:
// local accounts in the data directory's PostgreSQL (src/accounts/store.ts), as the service role, like `sagews logs`.
import pg from "pg"
import { MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, hashPassword } from "../accounts/password.ts"
import * as store from "../accounts/store.ts"
import { newApiToken, secretHash } from "../accounts/tokens.ts"
import { redact } from "../db/client.ts"
import { UsageError } from "./args.ts"

export const USER_USAGE = "user add EMAIL (password on stdin) | user list [--json] | user disable EMAIL | user token EMAIL"

export interface UserIo {
  readonly out: (line: string) => void
  readonly err: (line: string) => void
  /** everything on standard input (the password of `user add`) */
  readonly readStdin: () => Promise<string>
}

const connect = async (dbUrl: string): Promise<pg.Client> => {
  const client = new pg.Client({ connectionString: dbUrl, connectionTimeoutMillis: 3000 })
  client.on("error", () => undefined)
  try {
    await client.connect()
  } catch (e) {
    throw new Error(`cannot reach PostgreSQL at ${redact(dbUrl)}: ${e instanceof Error ? e.message : String(e)}. Is sagews running? (sagews status)`)
  }
  return client
}

/** The email argument, normalized; a usage error naming it when it is not one. */
const emailArg = (sub: string, args: ReadonlyArray<string>): string => {
  if (args.length !== 1) throw new UsageError(`user ${sub} expects one email, got ${args.length === 0 ? "nothing" : JSON.stringify(args.join(" "))}`)
  const email = store.normalizeEmail(args[0]!)
  const problem = store.emailProblem(email)
  if (problem !== undefined) throw new UsageError(`user ${sub}: ${problem}`)
  return email
}

/** the password as typed: one trailing newline (echo, a here-string) is not part of it */
export const passwordOf = (stdin: string): string => stdin.replace(/\r?\n$/, "")

const iso = (d: Date | null): string => (d === null ? "-" : d.toISOString().replace(/\.\d{3}Z$/, "Z"))

const table = (rows: ReadonlyArray<store.AccountRow>): string => {
  const lines = [["EMAIL", "CREATED", "DISABLED", "LAST SIGN-IN"], ...rows.map((r) => [r.email, iso(r.createdAt), iso(r.disabledAt), iso(r.lastSignInAt)])]
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)))
  return lines.map((l) => l.map((c, i) => (i === l.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n")
}

const NO_ACCOUNT = (email: string) => `no account has the email ${email} (sagews user list shows them; sagews user add ${email} makes one)`

/** Runs one `user` subcommand; 0 done, 1 failed (PostgreSQL, an unknown or existing email), 2 bad usage. */
export const userCommand = async (o: { readonly dbUrl: () => Promise<string>; readonly args: ReadonlyArray<string>; readonly json: boolean } & UserIo): Promise<number> => {
  const [sub, ...args] = o.args
  const now = new Date()
  switch (sub) {
    case "add": {
      const email = emailArg(sub, args)
      const password = passwordOf(await o.readStdin())
      if (password.length < MIN_PASSWORD_CHARS) {
        throw new UsageError(`user add ${email}: the password on stdin has ${password.length} characters; it needs at least ${MIN_PASSWORD_CHARS}`)
      }
      if (password.length > MAX_PASSWORD_CHARS) throw new UsageError(`user add ${email}: the password on stdin has ${password.length} characters; at most ${MAX_PASSWORD_CHARS}`)
      const passwordHash = await hashPassword(password)
      return withDb(o, async (db) => {
        const added = await store.addAccount(db, { email, passwordHash, now })
        if (added === "exists") {
          o.err(`sagews: an account with the email ${email} exists already (sagews user list shows it)`)
          return 1
        }
        o.out(`sagews: account ${email} added (id ${added.id})`)
        return 0
      })
    }
    case "list": {
      if (args.length !== 0) throw new UsageError(`user list takes no arguments, got ${JSON.stringify(args.join(" "))}`)
      return withDb(o, async (db) => {
        const rows = await store.listAccounts(db)
        if (o.json) o.out(JSON.stringify(rows))
        else o.out(rows.length === 0 ? "no accounts (sagews user add EMAIL makes one)" : table(rows))
        return 0
      })
    }
    case "disable": {
      const email = emailArg(sub, args)
      return withDb(o, async (db) => {
        const done = await store.disableAccount(db, email, now)
        if (done === "unknown") {
          o.err(`sagews: ${NO_ACCOUNT(email)}`)
          return 1
        }
        o.out(done === "disabled" ? `sagews: account ${email} disabled: its sign-ins are ended and its API tokens refused` : `sagews: account ${email} was disabled already`)
        return 0
      })
    }
    case "token": {
      const email = emailArg(sub, args)
      return withDb(o, async (db) => {
        const token = newApiToken()
        const added = await store.addApiToken(db, email, secretHash(token), now)
        if (added === "unknown" || added === "disabled") {
          o.err(`sagews: ${added === "unknown" ? NO_ACCOUNT(email) : `the account ${email} is disabled: it cannot have API tokens`}`)
          return 1
        }
        // the only time the token is shown: PostgreSQL keeps its hash
        o.out(token)
        o.err(`sagews: a new API token for ${email} (shown once; send it as Authorization: Bearer TOKEN)`)
        return 0
      })
    }
    default:
      throw new UsageError(sub === undefined ? `user expects a subcommand: ${USER_USAGE}` : `unknown user subcommand ${JSON.stringify(sub)}: ${USER_USAGE}`)
  }
}

const withDb = async (o: { readonly dbUrl: () => Promise<string> }, f: (db: pg.Client) => Promise<number>): Promise<number> => {
  const db = await connect(await o.dbUrl())
  try {
    return await f(db)
  } finally {
    await db.end().catch(() => undefined)
  }
}

/** Reads standard input to its end (a terminal: until Ctrl-D). */
export const readStdin = async (): Promise<string> => {
  if (process.stdin.isTTY) process.stderr.write("password (then Enter and Ctrl-D): ")
  const chunks: Array<Buffer> = []
  for await (const chunk of process.stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)))
  return Buffer.concat(chunks).toString("utf8")
}
