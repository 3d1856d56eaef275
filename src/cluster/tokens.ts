// `sagews join-token` on the store host: make a token (a login role of its own, its rights, a join_tokens row), list
// them, revoke one. It talks to the running own cluster as the superuser over loopback; only what revoking needs is
// stored, and the token itself is returned once to be printed.
import { randomBytes } from "node:crypto"
import { readFile } from "node:fs/promises"
import { Data, Effect } from "effect"
import { ensureIdentityKey } from "../backend/identity.ts"
import { connect, type DbError, query, quoteIdent } from "../db/client.ts"
import { passwordFile, SERVICE_ROLE, SUPERUSER } from "../db/credentials.ts"
import { scramVerifier } from "../db/scram.ts"
import { localUrl } from "../db/url.ts"
import { ensureWorkerSecret } from "../wire/secret.ts"
import { caFingerprint } from "./ca.ts"
import { ensureWorkerGroup, WORKER_GROUP } from "./rights.ts"
import { encodeToken, type JoinRole } from "./token.ts"

/** A token could not be made, listed or revoked: what and why, and what to do. */
export class JoinTokenError extends Data.TaggedError("JoinTokenError")<{ readonly message: string }> {}

/** 10 characters of [a-z2-7]: 50 bits, enough that two tokens never share an id */
const ID_LENGTH = 10
const ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
export const JOIN_ROLE_PREFIX = "sagews_join_"

const newId = (): string => [...randomBytes(ID_LENGTH)].map((b) => ID_ALPHABET[b % 32]).join("")

const literal = (text: string): string => `'${text.replaceAll("'", "''")}'`

export interface StoreTarget {
  readonly dataDir: string
  /** config `address`: where other hosts reach this one */
  readonly address: string
  /** config postgres.port */
  readonly port: number
  /** config postgres.listen: a token is useless unless PostgreSQL listens beyond loopback */
  readonly listen: boolean
  /** config postgres.url: join tokens are for the own cluster only */
  readonly externalUrl?: string | undefined
}

const dbFailure = (what: string) => (e: DbError) =>
  new JoinTokenError({
    // a SQLSTATE means PostgreSQL answered; anything else (ECONNREFUSED, a timeout) means nothing did
    message: `${what}: ${e.message}` + (e.code !== undefined && /^[0-9A-Z]{5}$/.test(e.code) ? "" : "; is `sagews start` running on this host (the store)?"),
  })

/** The superuser's URL on loopback, from <data>/secret/pg-postgres.password. */
const superuserUrl = (target: StoreTarget) =>
  Effect.gen(function*() {
    if (target.externalUrl) {
      return yield* new JoinTokenError({
        message: "postgres.url names an external PostgreSQL: join tokens are made for the cluster sagews owns; " +
          "point other hosts at your PostgreSQL with their own postgres.url instead",
      })
    }
    const file = passwordFile(target.dataDir, SUPERUSER)
    const password = yield* Effect.tryPromise({
      try: () => readFile(file, "utf8"),
      catch: (e) => new JoinTokenError({ message: `cannot read ${file} (${e instanceof Error ? e.message : String(e)}): run this on the store host, as root, with its --data` }),
    })
    return localUrl(target.port, { user: SUPERUSER, password: password.trim() })
  })

const asSuperuser = <A>(target: StoreTarget, what: string, use: (client: Parameters<typeof query>[0]) => Effect.Effect<A, DbError>) =>
  Effect.gen(function*() {
    const url = yield* superuserUrl(target)
    return yield* Effect.scoped(Effect.flatMap(connect(url), use)).pipe(Effect.mapError(dbFailure(what)))
  })

export interface CreatedToken {
  readonly id: string
  readonly role: JoinRole
  readonly pgRole: string
  /** print it once: it is not stored anywhere */
  readonly token: string
}

/** A new token for `role`: a login role with a random password, a member of the service role (web) or the worker group. */
export const createJoinToken = (target: StoreTarget, role: JoinRole): Effect.Effect<CreatedToken, JoinTokenError> =>
  Effect.gen(function*() {
    if (!target.listen) {
      return yield* new JoinTokenError({
        message: "postgres.listen is false, so no other host can reach this PostgreSQL: set postgres.listen to true and address " +
          `(now ${target.address}) to this host's IP for the others, restart the tree (\`sagews stop\`, \`sagews start\`), then make the token`,
      })
    }
    const ca = yield* caFingerprint(target.dataDir).pipe(Effect.mapError((e) => new JoinTokenError({ message: e.message })))
    const secrets = yield* Effect.tryPromise({
      try: async () => ({
        workerKey: (await ensureWorkerSecret(target.dataDir)).toString("utf8"),
        identityKey: role === "web" ? (await ensureIdentityKey(target.dataDir)).toString("utf8") : undefined,
      }),
      catch: (e) => new JoinTokenError({ message: `the cluster's secrets in ${target.dataDir}/secret: ${e instanceof Error ? e.message : String(e)}` }),
    })
    const id = newId()
    const pgRole = `${JOIN_ROLE_PREFIX}${id}`
    const password = randomBytes(32).toString("hex")
    const group = role === "web" ? SERVICE_ROLE : WORKER_GROUP
    yield* asSuperuser(target, "making the token's PostgreSQL role", (client) =>
      Effect.gen(function*() {
        yield* ensureWorkerGroup(client)
        yield* query(client, "BEGIN")
        // the verifier, not the password: a statement that fails is echoed to the server's log
        yield* query(client, `CREATE ROLE ${quoteIdent(pgRole)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD ${literal(scramVerifier(password))} IN ROLE ${quoteIdent(group)}`)
        yield* query(client, "INSERT INTO join_tokens (id, role, pg_role) VALUES ($1, $2, $3)", [id, role, pgRole])
        yield* query(client, "COMMIT")
      }).pipe(Effect.tapError(() => query(client, "ROLLBACK").pipe(Effect.ignore))))
    const token = encodeToken({
      id,
      role,
      store: { address: target.address, port: target.port },
      user: pgRole,
      password,
      ca,
      workerKey: secrets.workerKey,
      ...(secrets.identityKey !== undefined ? { identityKey: secrets.identityKey } : {}),
    })
    return { id, role, pgRole, token }
  })

export interface TokenRow {
  readonly id: string
  readonly role: JoinRole
  readonly pgRole: string
  readonly createdAt: Date
  readonly usedAt: Date | null
  readonly usedBy: string | null
  readonly revokedAt: Date | null
}

export const listJoinTokens = (target: StoreTarget): Effect.Effect<ReadonlyArray<TokenRow>, JoinTokenError> =>
  asSuperuser(target, "listing the join tokens", (client) =>
    query(client, `SELECT id, role, pg_role AS "pgRole", created_at AS "createdAt", used_at AS "usedAt", used_by AS "usedBy",
      revoked_at AS "revokedAt" FROM join_tokens ORDER BY created_at`).pipe(Effect.map((r) => r.rows as Array<TokenRow>)))

/**
 * Revokes token `id`: its role may no longer log in, its open connections are ended, its pending certificate
 * requests refused. Idempotent; an unknown id is an error naming it.
 */
export const revokeJoinToken = (target: StoreTarget, id: string): Effect.Effect<TokenRow, JoinTokenError> =>
  Effect.gen(function*() {
    const row = yield* asSuperuser(target, `revoking join token ${id}`, (client) =>
      Effect.gen(function*() {
        const found = yield* query(client, `UPDATE join_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
          RETURNING id, role, pg_role AS "pgRole", created_at AS "createdAt", used_at AS "usedAt", used_by AS "usedBy", revoked_at AS "revokedAt"`, [id])
        const token = found.rows[0] as TokenRow | undefined
        if (token === undefined) return undefined
        yield* query(client, `ALTER ROLE ${quoteIdent(token.pgRole)} NOLOGIN`)
        yield* query(client, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", [token.pgRole])
        yield* query(client, "UPDATE cert_requests SET refused = 'the join token was revoked', answered_at = now() WHERE pg_role = $1 AND answered_at IS NULL", [token.pgRole])
        return token
      }))
    if (row === undefined) {
      return yield* new JoinTokenError({ message: `no join token has the id ${JSON.stringify(id)}: \`sagews join-token --list\` shows them` })
    }
    return row
  })
