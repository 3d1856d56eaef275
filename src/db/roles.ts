// The roles of the cluster sagews owns, made right on every start (idempotent): an older cluster made with `trust`
// is upgraded by the same steps. Before the postmaster runs, single-user mode sets both passwords and the service
// role's attributes (nothing listens meanwhile, so there is never a moment without a password); once it runs,
// the superuser hands the service role its database and its rights on the tables.
import * as path from "node:path"
import { Effect } from "effect"
import { clusterPaths, ClusterError, type ClusterUser, run } from "./cluster.ts"
import { connect, type ConnectOptions, type DbError, query, quoteIdent } from "./client.ts"
import type { ClusterCredentials } from "./credentials.ts"
import { scramVerifier } from "./scram.ts"
import { DATABASE, withDatabase } from "./url.ts"

const literal = (text: string): string => `'${text.replaceAll("'", "''")}'`

/**
 * One statement a line (single-user mode ends a statement at a newline). Passwords go in as SCRAM verifiers:
 * a statement that fails is echoed to the log, and a verifier there gives nothing away.
 */
const roleStatements = (credentials: ClusterCredentials): ReadonlyArray<string> => {
  const superuser = quoteIdent(credentials.superuser.user)
  const service = quoteIdent(credentials.service.user)
  return [
    `ALTER ROLE ${superuser} WITH SUPERUSER LOGIN PASSWORD ${literal(scramVerifier(credentials.superuser.password))}`,
    `DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = ${literal(credentials.service.user)}) THEN CREATE ROLE ${service}; END IF; END $$`,
    `ALTER ROLE ${service} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD ${literal(scramVerifier(credentials.service.password))}`,
  ]
}

export interface SetRolesOptions {
  /** fsync=off, as the postmaster of a test cluster runs */
  readonly noSync?: boolean | undefined
}

/** Sets the roles in single-user mode; the postmaster must not be running (call it before each start). */
export const setRoles = (
  dataDir: string,
  user: ClusterUser,
  binDir: string,
  credentials: ClusterCredentials,
  options: SetRolesOptions = {},
): Effect.Effect<void, ClusterError> => {
  const { pg } = clusterPaths(path.resolve(dataDir))
  // exit_on_error: a failed statement ends the run with a non-zero status instead of going on to the next.
  const args = ["--single", "-D", pg, "-c", "exit_on_error=on", ...(options.noSync ? ["-c", "fsync=off"] : []), "postgres"]
  const input = roleStatements(credentials).join("\n") + "\n"
  return run(path.join(binDir, "postgres"), args, user, input).pipe(
    Effect.asVoid,
    Effect.mapError((e) => new ClusterError({ message: `setting the PostgreSQL roles failed: ${e.message}` })),
  )
}

/**
 * As the superuser, on the running cluster: the service role owns the sagews database and may read and write
 * every table of it (not the migrations' own bookkeeping); nobody but the superuser connects to `postgres` or
 * `template1`. Run after the migrations, so that new tables are covered.
 */
export const grantService = (
  superuserUrl: string,
  service: string,
  options: ConnectOptions = {},
): Effect.Effect<void, DbError> =>
  Effect.scoped(
    Effect.gen(function*() {
      const role = quoteIdent(service)
      const admin = yield* connect(withDatabase(superuserUrl, "postgres"), options)
      yield* query(admin, `ALTER DATABASE ${quoteIdent(DATABASE)} OWNER TO ${role}`)
      yield* query(admin, "REVOKE CONNECT, TEMPORARY ON DATABASE postgres, template1 FROM PUBLIC")
      const db = yield* connect(withDatabase(superuserUrl, DATABASE), options)
      yield* query(db, `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${role}`)
      yield* query(db, `GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO ${role}`)
      yield* query(db, `REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON schema_migrations FROM ${role}`)
    }),
  )
