// What the join roles of other hosts may do in the store's database. A web token's role is a member of the service
// role (a web host does what this host's backends do); a worker token's role is a member of `sagews_worker`, which
// holds only what a worker host's worker and logwatch need. Applied on every start after the migrations (as
// grantService), so tables added since are covered and a right taken away here is taken away there.
import { Effect } from "effect"
import { connect, type ConnectOptions, type DbError, query, quoteIdent } from "../db/client.ts"
import { DATABASE, withDatabase } from "../db/url.ts"

/** the group role every worker token's login role is a member of */
export const WORKER_GROUP = "sagews_worker"
/** PostgreSQL's duplicate_object: another starter created the group role between the check and the CREATE */
const DUPLICATE_OBJECT = "42710"

/**
 * A worker host: its workers register and beat (workers), end their sessions (sessions: only the end),
 * logwatch ships its lines (log, log_offsets: DELETE forgets a removed file's offset), and `init --join` asks for its
 * host certificate (cert_requests: its own rows only, by row-level security). Nothing else: not accounts, not workspaces.
 */
const WORKER_GRANTS: ReadonlyArray<string> = [
  "GRANT SELECT, INSERT, UPDATE ON workers TO %",
  "GRANT SELECT, INSERT ON log TO %",
  "GRANT USAGE ON SEQUENCE log_id_seq TO %",
  "GRANT SELECT, INSERT, UPDATE, DELETE ON log_offsets TO %",
  "GRANT SELECT, UPDATE (ended_at, end_reason) ON sessions TO %",
  "GRANT SELECT, INSERT (host, address, csr) ON cert_requests TO %",
]

/** Creates the worker group role when it is missing (NOLOGIN: nobody logs in as the group itself). */
export const ensureWorkerGroup = (client: Parameters<typeof query>[0]) =>
  Effect.gen(function*() {
    const found = yield* query(client, "SELECT 1 FROM pg_roles WHERE rolname = $1", [WORKER_GROUP])
    if (found.rowCount !== 0) return
    const created = yield* Effect.result(query(client, `CREATE ROLE ${quoteIdent(WORKER_GROUP)} NOLOGIN`))
    if (created._tag === "Failure" && created.failure.code !== DUPLICATE_OBJECT) return yield* created.failure
  })

/** As the superuser, on the running own cluster, after the migrations: the worker group's rights, table by table. */
export const grantJoinRights = (superuserUrl: string, options: ConnectOptions = {}): Effect.Effect<void, DbError> =>
  Effect.scoped(
    Effect.gen(function*() {
      const db = yield* connect(withDatabase(superuserUrl, DATABASE), options)
      yield* ensureWorkerGroup(db)
      const group = quoteIdent(WORKER_GROUP)
      // after the migrations: every table named here exists
      for (const grant of WORKER_GRANTS) yield* query(db, grant.replace("%", group))
    }),
  )
