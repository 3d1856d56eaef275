// The PostgreSQL side of workspaces (tables of migration 5): each workspace's owner and head version, and the chain
// of bundles a restore fetches. A commit moves the head and stores its bundle in one transaction, and only if the
// head is still where the commit started from, so two hosts can never both think they saved on top of one version.
import { Context, Effect, Layer } from "effect"
import pg from "pg"
import { CONNECT_TIMEOUT, QUERY_TIMEOUT, toDbError, type DbError } from "../db/client.ts"
import { WorkspaceError } from "./errors.ts"

/** Most connections one process holds for workspaces: saves are short transactions. */
export const POOL_SIZE = 4

export interface HeadState {
  readonly head: string
  /** the sequence number of the head's bundle */
  readonly seq: number
  /** increments stored since the last full bundle */
  readonly chain: number
  readonly owner: string
}

export interface StoredBundle {
  readonly seq: number
  readonly head: string
  readonly bundle: Uint8Array
}

export interface NewCommit {
  readonly from: string
  readonly to: string
  readonly bundle: Uint8Array
  /** a full bundle: the ones before it are dropped in the same transaction */
  readonly complete: boolean
  readonly timeMs: number
}

export interface Snapshot {
  readonly state: HeadState | undefined
  readonly bundles: ReadonlyArray<StoredBundle>
}

/** The head moved on elsewhere since the commit started: nothing was stored. */
export interface Moved {
  readonly _tag: "Moved"
  readonly latest: string
}

export interface WorkspaceStoreShape {
  readonly insert: (input: { readonly id: string; readonly owner: string; readonly head: string; readonly bundle: Uint8Array; readonly timeMs: number }) => Effect.Effect<void, WorkspaceError>
  readonly state: (id: string) => Effect.Effect<HeadState | undefined, WorkspaceError>
  /**
   * The head and the bundles after the one whose head is `after` (all of them when it is undefined or no longer
   * stored), in order, read in one snapshot: applying the bundles ends exactly at that head, even while another host
   * commits (read apart, the bundles could already hold a save the head read before them did not).
   */
  readonly bundlesAfter: (id: string, after: string | undefined) => Effect.Effect<Snapshot, WorkspaceError>
  readonly commit: (id: string, commit: NewCommit) => Effect.Effect<{ readonly _tag: "Committed"; readonly seq: number } | Moved, WorkspaceError>
}

const dbFailure = (id: string | undefined, what: string) => (e: DbError): WorkspaceError =>
  new WorkspaceError({ reason: "Database", workspace: id, message: `PostgreSQL failed to ${what}; try again`, detail: `${e.operation}: ${e.message}` })

const HEAD = "SELECT head, seq, chain, owner FROM workspaces WHERE id = $1"

const ts = (ms: number): string => new Date(ms).toISOString()

export class WorkspaceStore extends Context.Service<WorkspaceStore, WorkspaceStoreShape>()("sagews/workspace/WorkspaceStore") {
  /** A pool on `url` (the service role's) for as long as the layer lives. */
  static readonly layer = (url: string) =>
    Layer.effect(WorkspaceStore, Effect.gen(function*() {
      const pool = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const p = new pg.Pool({ connectionString: url, max: POOL_SIZE, connectionTimeoutMillis: CONNECT_TIMEOUT, query_timeout: QUERY_TIMEOUT })
          p.on("error", () => {}) // an idle connection's failure; the next query reports it
          return p
        }),
        (p) => Effect.promise(() => p.end().catch(() => {})),
      )
      return makeStore(pool)
    }))
}

/** listens for a checked-out client's errors (see transaction) */
const unheard = (): void => {}

/**
 * `f` in a transaction on one connection: committed when it returns, rolled back when it throws. The pool stops
 * listening for a client's errors while it is checked out: PostgreSQL ending the connection between two queries (a
 * restart) would be an unhandled 'error' event that ends the process; heard here, the next query fails with it.
 */
const transaction = async <A>(pool: pg.Pool, f: (client: pg.PoolClient) => Promise<A>, begin = "BEGIN"): Promise<A> => {
  const client = await pool.connect()
  client.on("error", unheard)
  let broken = false
  try {
    await client.query(begin)
    const result = await f(client)
    await client.query("COMMIT")
    return result
  } catch (error) {
    await client.query("ROLLBACK").catch(() => (broken = true))
    throw error
  } finally {
    if (!broken) client.removeListener("error", unheard)
    client.release(broken)
  }
}

const attempt = <A>(id: string | undefined, what: string, operation: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: toDbError(operation) }).pipe(Effect.mapError(dbFailure(id, what)))

const makeStore = (pool: pg.Pool): WorkspaceStoreShape => ({
  insert: Effect.fn("WorkspaceStore.insert")(function*({ id, owner, head, bundle, timeMs }) {
    const result = yield* Effect.result(Effect.tryPromise({
      try: () => transaction(pool, async (c) => {
        await c.query(
          "INSERT INTO workspaces (id, owner, head, seq, chain, created_at, updated_at) VALUES ($1, $2, $3, 1, 0, $4, $4)",
          [id, owner, head, ts(timeMs)],
        )
        await c.query("INSERT INTO workspace_bundles (workspace_id, seq, head, complete, bundle, created_at) VALUES ($1, 1, $2, true, $3, $4)", [id, head, bundle, ts(timeMs)])
      }),
      catch: toDbError("INSERT INTO workspaces"),
    }))
    if (result._tag === "Success") return
    const e = result.failure
    if (e.code === "23505") return yield* new WorkspaceError({ reason: "Exists", workspace: id, message: `a workspace ${id} exists already; choose another id` })
    if (e.code === "23503") return yield* new WorkspaceError({ reason: "NotFound", workspace: id, message: `no account ${owner} to own workspace ${id}` })
    if (e.code === "22P02") return yield* new WorkspaceError({ reason: "NotFound", workspace: id, message: `no account ${owner} to own workspace ${id}: an account id is a uuid` })
    return yield* dbFailure(id, "create the workspace")(e)
  }),

  state: (id) =>
    attempt(id, "read the workspace's head", "SELECT FROM workspaces", () => pool.query<HeadState>(HEAD, [id])).pipe(Effect.map((r) => r.rows[0])),

  bundlesAfter: (id, after) =>
    attempt(id, "read the workspace's bundles", "SELECT FROM workspace_bundles", () =>
      transaction(pool, async (c) => {
        const state = (await c.query<HeadState>(HEAD, [id])).rows[0]
        const bundles = await c.query<{ seq: number; head: string; bundle: Buffer }>(
          `SELECT seq, head, bundle FROM workspace_bundles
            WHERE workspace_id = $1 AND seq > COALESCE((SELECT seq FROM workspace_bundles WHERE workspace_id = $1 AND head = $2), 0)
            ORDER BY seq`,
          [id, after ?? null],
        )
        return { state, bundles: bundles.rows }
      }, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")),

  commit: (id, commit) =>
    attempt(id, "store the save", "UPDATE workspaces", () =>
      transaction(pool, async (c) => {
        const moved = await c.query<{ seq: number }>(
          `UPDATE workspaces SET head = $3, seq = seq + 1, chain = CASE WHEN $4 THEN 0 ELSE chain + 1 END, updated_at = $5
            WHERE id = $1 AND head = $2 RETURNING seq`,
          [id, commit.from, commit.to, commit.complete, ts(commit.timeMs)],
        )
        const row = moved.rows[0]
        if (row === undefined) {
          const latest = await c.query<{ head: string }>("SELECT head FROM workspaces WHERE id = $1", [id])
          return { _tag: "Moved" as const, latest: latest.rows[0]?.head ?? "" }
        }
        await c.query(
          "INSERT INTO workspace_bundles (workspace_id, seq, head, complete, bundle, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
          [id, row.seq, commit.to, commit.complete, commit.bundle, ts(commit.timeMs)],
        )
        if (commit.complete) await c.query("DELETE FROM workspace_bundles WHERE workspace_id = $1 AND seq < $2", [id, row.seq])
        return { _tag: "Committed" as const, seq: row.seq }
      })),
})
