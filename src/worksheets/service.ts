// The Worksheets service: an account's worksheets, each the file `worksheets/<id>.ipynb` in the account's workspace
// (one per account, made on first use; src/workspace/), and a row of the `worksheets` table (migration 6) naming its
// owner, path, title and latest version. A save holds the row locked from its version check until the row names the
// new version, so of two saves on one version exactly one wins, on any backends. A backend without PostgreSQL has none.
// It also keeps a worksheet's read-only share token, and the ?q= permalinks (code and kernel, not worksheets, but
// stored in the same PostgreSQL through the same pool).
import { randomBytes, randomUUID } from "node:crypto"
import { join } from "node:path"
import { Clock, Context, Data, Duration, Effect, Layer, type Result } from "effect"
import pg from "pg"
import { type Account } from "../accounts/store.ts"
import { Options } from "../backend/options.ts"
import { MAX_OPEN_FILES, MAX_OPEN_FILES_BYTES } from "../protocol/worker.ts"
import type { Conflict, WorkspaceError } from "../workspace/errors.ts"
import type { Entry } from "../workspace/repo.ts"
import { keyedLock } from "../workspace/keyed-lock.ts"
import { WorkspaceStore } from "../workspace/store.ts"
import { pathProblem } from "../workspace/validate.ts"
import { Workspaces, type WorkspacesShape } from "../workspace/workspaces.ts"
import { newSlug } from "../publish/write.ts"

/** a handful of connections: a save holds one for its commit (tens of ms), the rest are one short query */
const POOL = { max: 4, connectionTimeoutMillis: 2_000, query_timeout: 30_000, idleTimeoutMillis: 10_000 }
/** how long stopping waits for the pool's connections to close */
const CLOSE_GRACE = Duration.seconds(1)

/** A worksheet call failed: no database on this backend, PostgreSQL or git failed for a moment, or for good. */
export class WorksheetsError extends Data.TaggedError("WorksheetsError")<{
  readonly reason: "NoDatabase" | "Unavailable" | "Failed"
  readonly message: string
}> {}

export interface Summary {
  readonly id: string
  readonly title: string
  readonly version: string
  /** ms since the epoch of its latest save */
  readonly updated: number
}

export type Saved =
  | { readonly type: "saved"; readonly version: string }
  /** the version the save started from is not the latest: nothing was written */
  | { readonly type: "stale"; readonly latest: string }
  | { readonly type: "missing" }

/** What a publish writes: the worksheet's latest version, to the page at /pub/<slug>/ */
export interface Publication {
  readonly slug: string
  readonly version: string
  readonly title: string
  readonly content: Uint8Array
  /** ms since the epoch */
  readonly at: number
}

/** What a share link reads: the shared worksheet's latest version */
export interface Shared {
  readonly content: Uint8Array
  readonly version: string
  readonly title: string
}

/** A permalink to store: `q` is derived from code and kernel by the caller (src/backend/permalinks.ts) */
export interface NewPermalink {
  readonly q: string
  readonly code: string
  readonly kernel: string
  /** the source address whose new permalinks are counted */
  readonly address: string
  /** at most `max` new permalinks per address in `windowMs` */
  readonly max: number
  readonly windowMs: number
}

export type Permalinked =
  | { readonly type: "created" | "exists" }
  /** the address made `max` new ones within the window: nothing was stored */
  | { readonly type: "limited"; readonly retryAfterMs: number }

/** 32 random bytes, 43 base64url characters: a share link cannot be guessed, only be given */
export const newShareToken = (): string => randomBytes(32).toString("base64url")
export const SHARE_TOKEN = /^[A-Za-z0-9_-]{43}$/

/** The worksheets' own folder of a workspace: kept by the worksheet routes, not the files routes or sessions. */
export const WORKSHEETS_FOLDER = "worksheets/"

/** Why `path` cannot be a file of the files routes or of a session (a workspace path outside worksheets/), or undefined. */
export const filePathProblem = (path: string): string | undefined =>
  pathProblem(path) ?? (path.startsWith(WORKSHEETS_FOLDER) ? `it is in ${WORKSHEETS_FOLDER}, which the worksheet routes keep (/api/v1/worksheets)` : undefined)

/** The files of an account's workspace at its latest version (undefined: it has no workspace yet), worksheets left out. */
export interface FileListing {
  readonly version: string | undefined
  readonly files: ReadonlyArray<{ readonly path: string; readonly size: number }>
}

export type FileSaved =
  | { readonly type: "saved"; readonly version: string }
  /** the file changed (or was made, or removed) since the version the edit started from: nothing was written */
  | { readonly type: "stale"; readonly latest: string }
  | { readonly type: "missing" }

/** What a session opened with its account's workspace gets in its home: every file but worksheets/, within the caps. */
export type SessionFiles =
  | { readonly type: "files"; readonly version: string | undefined; readonly files: ReadonlyArray<{ readonly path: string; readonly content: Uint8Array }> }
  | { readonly type: "tooMany"; readonly count: number; readonly bytes: number }

export interface WorksheetsService {
  /** false on a backend without PostgreSQL: every call fails with NoDatabase */
  readonly available: boolean
  list(account: Account): Effect.Effect<ReadonlyArray<Summary>, WorksheetsError>
  create(account: Account, title: string, content: Uint8Array): Effect.Effect<{ readonly id: string; readonly version: string }, WorksheetsError>
  /** the file at `version` (the latest when undefined); undefined when the account has no such worksheet or version */
  read(account: Account, id: string, version?: string): Effect.Effect<{ readonly content: Uint8Array; readonly version: string } | undefined, WorksheetsError>
  save(account: Account, id: string, base: string, title: string, content: Uint8Array): Effect.Effect<Saved, WorksheetsError>
  /** its versions newest first; undefined when the account has no such worksheet */
  history(account: Account, id: string): Effect.Effect<ReadonlyArray<Entry> | undefined, WorksheetsError>
  /** true when it was the account's, and is now deleted */
  remove(account: Account, id: string): Effect.Effect<boolean, WorksheetsError>
  /**
   * Hands the latest version to `write` (the page's files) with the worksheet's slug, made the first time and kept for
   * good, then records it as published; the row is locked meanwhile, so publishes and saves of it take turns.
   * undefined when the account has no such worksheet.
   */
  publish(account: Account, id: string, write: (p: Publication) => Effect.Effect<void, WorksheetsError>): Effect.Effect<{ readonly slug: string; readonly version: string } | undefined, WorksheetsError>
  /** Calls `remove` with the slug when it is published, then records it as not; false when the account has no such worksheet. */
  unpublish(account: Account, id: string, remove: (slug: string) => Effect.Effect<void, WorksheetsError>): Effect.Effect<boolean, WorksheetsError>
  /** the worksheet's share token, made the first time and kept until `unshare`; undefined when the account has no such worksheet */
  share(account: Account, id: string): Effect.Effect<string | undefined, WorksheetsError>
  /** forgets the share token (it never reads anything again); false when the account has no such worksheet */
  unshare(account: Account, id: string): Effect.Effect<boolean, WorksheetsError>
  /** the latest version of the worksheet shared by `token`; undefined for a token that is unknown, revoked or of a deleted worksheet */
  byShare(token: string): Effect.Effect<Shared | undefined, WorksheetsError>
  /** stores a permalink unless it exists (same q) or its address is over its limit */
  createPermalink(p: NewPermalink): Effect.Effect<Permalinked, WorksheetsError>
  /** the code and kernel of permalink `q`, undefined when there is none */
  permalink(q: string): Effect.Effect<{ readonly code: string; readonly kernel: string } | undefined, WorksheetsError>
  /** the files of the account's workspace at its latest version, but worksheets/ */
  listFiles(account: Account): Effect.Effect<FileListing, WorksheetsError>
  /** one file at the latest version, undefined when there is none (or the path is not a file's: see filePathProblem) */
  readFile(account: Account, path: string): Effect.Effect<{ readonly content: Uint8Array; readonly version: string } | undefined, WorksheetsError>
  /**
   * Saves one file as a commit (the workspace is made on first use). With `base`, only when the file is still as it was
   * at that version (other files may have changed since): else `stale`.
   */
  writeFile(account: Account, path: string, content: Uint8Array, base?: string): Effect.Effect<FileSaved, WorksheetsError>
  /** Removes one file as a commit; `missing` when there is none, `stale` as for writeFile. */
  deleteFile(account: Account, path: string, base?: string): Effect.Effect<FileSaved, WorksheetsError>
  /** The account's (by id) files for a session's home, or how far they are over MAX_OPEN_FILES / MAX_OPEN_FILES_BYTES. */
  filesForSession(accountId: string): Effect.Effect<SessionFiles, WorksheetsError>
  /** Saves a file a session of the account (by id) wrote, with no base: the latest version gets it. */
  saveSessionFile(accountId: string, path: string, content: Uint8Array): Effect.Effect<string, WorksheetsError>
}

const noDatabase = Effect.fail(new WorksheetsError({ reason: "NoDatabase", message: "worksheets need PostgreSQL, and this backend runs without one (--db)" }))

export const unavailableWorksheets: WorksheetsService = {
  available: false,
  list: () => noDatabase,
  create: () => noDatabase,
  read: () => noDatabase,
  save: () => noDatabase,
  history: () => noDatabase,
  remove: () => noDatabase,
  publish: () => noDatabase,
  unpublish: () => noDatabase,
  share: () => noDatabase,
  unshare: () => noDatabase,
  byShare: () => noDatabase,
  createPermalink: () => noDatabase,
  permalink: () => noDatabase,
  listFiles: () => noDatabase,
  readFile: () => noDatabase,
  writeFile: () => noDatabase,
  deleteFile: () => noDatabase,
  filesForSession: () => noDatabase,
  saveSessionFile: () => noDatabase,
}

/** an account's one workspace */
const workspaceOf = (account: Account): string => `u-${account.id}`
const pathOf = (id: string): string => `worksheets/${id}.ipynb`
const authorOf = (account: Account) => ({ name: account.name ?? account.email, email: account.email })

/** PostgreSQL away, git slow, or another host's save in between (a Conflict of a write naming no base): try again */
const fromWorkspace = (e: WorkspaceError | Conflict): WorksheetsError =>
  new WorksheetsError({
    reason: e._tag === "Conflict" || e.reason === "Database" || e.reason === "Timeout" ? "Unavailable" : "Failed",
    message: e.message,
  })

/**
 * PostgreSQL's errors that mean "not now" rather than "never": a connection exception (class 08), a shutdown, crash or
 * start-up under way (57P01 to 57P03: an operator's restart ends the connections of saves in flight with 57P01),
 * insufficient resources such as too many connections (class 53), a serialization failure or a deadlock.
 */
const transient = (code: string | undefined): boolean =>
  code !== undefined && (code.startsWith("08") || code.startsWith("53") || ["57P01", "57P02", "57P03", "40001", "40P01"].includes(code))

const fromDb = (what: string) => (e: unknown): WorksheetsError =>
  new WorksheetsError({
    reason: e instanceof pg.DatabaseError && !transient(e.code) ? "Failed" : "Unavailable",
    message: `PostgreSQL failed to ${what}: ${e instanceof Error ? e.message : String(e)}`,
  })

/** listens for a checked-out client's errors (see checkout) */
const unheard = (): void => {}

/**
 * A client of the pool for a transaction. The pool stops listening for a client's errors while it is checked out, so
 * PostgreSQL ending the connection between two queries (a restart: a save runs git between them) was an unhandled
 * 'error' event that ended the backend; heard here, the next query fails with it instead.
 */
const checkout = (pool: pg.Pool) =>
  Effect.tryPromise({
    try: async () => {
      const client = await pool.connect()
      client.on("error", unheard)
      return client
    },
    catch: fromDb("connect"),
  })

/** Ends what the transaction began (after COMMIT a no-op) and gives the client back; a client that fails it is dropped. */
const checkin = (client: pg.PoolClient) =>
  Effect.promise(() => client.query("ROLLBACK").then(() => {
    client.removeListener("error", unheard)
    client.release()
  }, () => client.release(true)))

interface Row {
  readonly id: string
  readonly workspace_id: string
  readonly path: string
  readonly title: string
  readonly version: string
  readonly updated_at: Date
}

export const postgresWorksheets = (pool: pg.Pool, workspaces: WorkspacesShape): WorksheetsService => {
  const sql = <R extends pg.QueryResultRow>(what: string, db: pg.Pool | pg.PoolClient, text: string, params: ReadonlyArray<unknown>) =>
    Effect.tryPromise({ try: () => db.query<R>(text, [...params]), catch: fromDb(what) }).pipe(Effect.map((r) => r.rows))
  const ensured = new Set<string>()
  /** the account's workspace, created the first time it is needed (by whichever backend gets there first) */
  const ensureWorkspace = Effect.fn("Worksheets.ensureWorkspace")(function*(account: Account) {
    const id = workspaceOf(account)
    if (ensured.has(id)) return id
    const exists = yield* workspaces.head(id).pipe(
      Effect.as(true),
      Effect.catchIf((e) => e.reason === "NotFound", () => Effect.succeed(false)),
      Effect.mapError(fromWorkspace),
    )
    if (!exists) {
      yield* workspaces.create({ id, owner: account.id, author: authorOf(account) }).pipe(
        Effect.catchIf((e) => e.reason === "Exists", () => Effect.void),
        Effect.mapError(fromWorkspace),
      )
    }
    ensured.add(id)
    return id
  })
  const row = (account: Account, id: string) =>
    sql<Row>("find the worksheet", pool, "SELECT id, workspace_id, path, title, version, updated_at FROM worksheets WHERE id = $1 AND owner = $2 AND deleted_at IS NULL", [id, account.id])
      .pipe(Effect.map((rows) => rows[0]))

  /**
   * One save at a time per account on this backend, waiting before it takes a connection: its saves go through the
   * one workspace's lock anyway, and waiting with a connection held used up the pool (4) for every other account.
   */
  const oneAtATime = keyedLock()

  /** `body` inside BEGIN ... COMMIT on one connection; anything it does not commit is rolled back */
  const transaction = <A>(what: string, body: (client: pg.PoolClient) => Effect.Effect<A, WorksheetsError>) =>
    Effect.acquireUseRelease(
      checkout(pool),
      (client) => Effect.gen(function*() {
        yield* sql(`begin to ${what}`, client, "BEGIN", [])
        const result = yield* body(client)
        yield* sql(`commit ${what}`, client, "COMMIT", [])
        return result
      }),
      checkin,
    )
  const lockRow = (client: pg.PoolClient, account: Account, id: string) =>
    sql<Row & { readonly published_slug: string | null }>("lock the worksheet", client,
      "SELECT id, workspace_id, path, title, version, published_slug FROM worksheets WHERE id = $1 AND owner = $2 AND deleted_at IS NULL FOR UPDATE", [id, account.id])
      .pipe(Effect.map((rows) => rows[0]))

  /** the workspace's files but worksheets/ (none when it has no workspace yet) */
  const listOf = (workspace: string): Effect.Effect<FileListing, WorksheetsError> =>
    workspaces.files(workspace).pipe(
      Effect.map((l): FileListing => ({ version: l.version, files: l.files.filter((f) => !f.path.startsWith(WORKSHEETS_FOLDER)) })),
      Effect.catchIf((e) => e.reason === "NotFound", () => Effect.succeed<FileListing>({ version: undefined, files: [] })),
      Effect.mapError(fromWorkspace),
    )

  /**
   * Writes (or, without content, removes) one file. With `base`: only when the file at the latest version is as it was
   * at `base`, checked against a head that the commit then names, so a save elsewhere in between is seen (a few times).
   */
  const changeFile = Effect.fn("Worksheets.changeFile")(function*(account: Account, path: string, content: Uint8Array | undefined, base: string | undefined) {
    const problem = filePathProblem(path)
    if (problem !== undefined) return yield* new WorksheetsError({ reason: "Failed", message: `refused the path ${JSON.stringify(path)}: ${problem}` })
    const workspace = yield* ensureWorkspace(account)
    const message = `${content === undefined ? "remove" : "save"} ${path}`
    const change = (head: string | undefined) =>
      content === undefined
        ? workspaces.remove({ id: workspace, path, message, author: authorOf(account), base: head })
        : workspaces.write({ id: workspace, path, content, message, author: authorOf(account), base: head })
    for (let attempt = 0; ; attempt++) {
      let head: string | undefined
      if (base !== undefined) {
        head = (yield* workspaces.head(workspace).pipe(Effect.mapError(fromWorkspace))).head
        const [then, now] = yield* Effect.all([
          workspaces.readMany(workspace, base, [path]).pipe(Effect.map((m) => m.get(path))),
          workspaces.readMany(workspace, head, [path]).pipe(Effect.map((m) => m.get(path))),
        ]).pipe(Effect.mapError(fromWorkspace))
        const same = then === undefined || now === undefined ? then === now : Buffer.compare(then, now) === 0
        if (!same) return { type: "stale", latest: head } satisfies FileSaved
      }
      const done = yield* change(head).pipe(
        Effect.map((version): FileSaved | undefined => ({ type: "saved", version })),
        Effect.catchIf((e) => e._tag === "WorkspaceError" && e.reason === "NotFound", () => Effect.succeed<FileSaved>({ type: "missing" })),
        // another save came between the check and the commit: check again against the new head
        Effect.catchIf((e) => e._tag === "Conflict" && base !== undefined && attempt < 3, () => Effect.succeed(undefined)),
        Effect.mapError(fromWorkspace),
      )
      if (done !== undefined) return done
    }
  })

  return {
    available: true,
    list: (account) =>
      sql<Row>("list the worksheets", pool, "SELECT id, title, version, updated_at FROM worksheets WHERE owner = $1 AND deleted_at IS NULL ORDER BY updated_at DESC, id", [account.id])
        .pipe(Effect.map((rows) => rows.map((r) => ({ id: r.id, title: r.title, version: r.version, updated: r.updated_at.getTime() })))),

    create: Effect.fn("Worksheets.create")(function*(account: Account, title: string, content: Uint8Array) {
      const workspace = yield* ensureWorkspace(account)
      const id = randomUUID()
      const path = pathOf(id)
      const version = yield* workspaces.write({ id: workspace, path, content, message: `new worksheet ${title}`, author: authorOf(account) }).pipe(Effect.mapError(fromWorkspace))
      const at = new Date(yield* Clock.currentTimeMillis)
      // a file whose row was never inserted (the backend died here) is never listed, read or saved again
      yield* sql("record the worksheet", pool,
        "INSERT INTO worksheets (id, owner, workspace_id, path, title, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        [id, account.id, workspace, path, title, version, at])
      return { id, version }
    }),

    read: Effect.fn("Worksheets.read")(function*(account: Account, id: string, version?: string) {
      const found = yield* row(account, id)
      if (found === undefined) return undefined
      const at = version ?? found.version
      return yield* workspaces.read(found.workspace_id, found.path, at).pipe(
        Effect.map((content) => ({ content, version: at })),
        // a version that is not in this workspace (another's, or none) is not found, as an unknown worksheet is
        Effect.catchIf((e) => e.reason === "NotFound" || e.reason === "InvalidVersion", () => Effect.succeed(undefined)),
        Effect.mapError(fromWorkspace),
      )
    }),

    save: Effect.fn("Worksheets.save")(function*(account: Account, id: string, base: string, title: string, content: Uint8Array) {
      return yield* oneAtATime(account.id)(Effect.acquireUseRelease(
        checkout(pool),
        (client) => Effect.gen(function*() {
          yield* sql("begin the save", client, "BEGIN", [])
          const [locked] = yield* sql<Row>("lock the worksheet", client,
            "SELECT id, workspace_id, path, version FROM worksheets WHERE id = $1 AND owner = $2 AND deleted_at IS NULL FOR UPDATE", [id, account.id])
          if (locked === undefined) return { type: "missing" } satisfies Saved
          if (locked.version !== base) {
            // The latest is this very content: a save sent again whose first answer was lost (a reset, its backend
            // killed after the commit, haproxy sending it again), or the same edit made elsewhere. It was applied
            // already, and is answered as saved (RFC 9110, 13.1.1) instead of a 409 the page would show as a conflict.
            const latest = yield* workspaces.read(locked.workspace_id, locked.path, locked.version).pipe(Effect.mapError(fromWorkspace))
            return Buffer.compare(latest, content) === 0 ? { type: "saved", version: locked.version } satisfies Saved : { type: "stale", latest: locked.version } satisfies Saved
          }
          // When the file is this content already (the same save again, or one whose workspace commit was stored but
          // whose row was not: PostgreSQL or the backend died in between), nothing is committed and that version is
          // the save's: a commit changing nothing would be answered 200 but missing from the worksheet's history.
          const version = yield* workspaces.write({ id: locked.workspace_id, path: locked.path, content, message: `save ${title}`, author: authorOf(account), skipUnchanged: true }).pipe(Effect.mapError(fromWorkspace))
          const at = new Date(yield* Clock.currentTimeMillis)
          yield* sql("record the save", client, "UPDATE worksheets SET version = $2, title = $3, updated_at = $4 WHERE id = $1", [id, version, title, at])
          yield* sql("commit the save", client, "COMMIT", [])
          return { type: "saved", version } satisfies Saved
        }),
        checkin,
      ))
    }),

    history: Effect.fn("Worksheets.history")(function*(account: Account, id: string) {
      const found = yield* row(account, id)
      if (found === undefined) return undefined
      return yield* workspaces.history(found.workspace_id, found.path).pipe(Effect.mapError(fromWorkspace))
    }),

    remove: Effect.fn("Worksheets.remove")(function*(account: Account, id: string) {
      const at = new Date(yield* Clock.currentTimeMillis)
      const rows = yield* sql("delete the worksheet", pool, "UPDATE worksheets SET deleted_at = $3 WHERE id = $1 AND owner = $2 AND deleted_at IS NULL RETURNING id", [id, account.id, at])
      return rows.length > 0
    }),

    publish: Effect.fn("Worksheets.publish")(function*(account: Account, id: string, write: (p: Publication) => Effect.Effect<void, WorksheetsError>) {
      // the slug is committed before any file is written: a page on disk always belongs to the row naming its slug
      const [named] = yield* sql<{ published_slug: string }>("name the published page", pool,
        "UPDATE worksheets SET published_slug = COALESCE(published_slug, $3) WHERE id = $1 AND owner = $2 AND deleted_at IS NULL RETURNING published_slug",
        [id, account.id, newSlug()])
      if (named === undefined) return undefined
      return yield* transaction("publish", (client) => Effect.gen(function*() {
        const locked = yield* lockRow(client, account, id)
        if (locked === undefined) return undefined
        const content = yield* workspaces.read(locked.workspace_id, locked.path, locked.version).pipe(Effect.mapError(fromWorkspace))
        const at = yield* Clock.currentTimeMillis
        const slug = locked.published_slug ?? named.published_slug
        yield* write({ slug, version: locked.version, title: locked.title, content, at })
        yield* sql("record the publish", client, "UPDATE worksheets SET published_version = $2, published_at = $3 WHERE id = $1", [id, locked.version, new Date(at)])
        return { slug, version: locked.version }
      }))
    }),

    unpublish: Effect.fn("Worksheets.unpublish")(function*(account: Account, id: string, remove: (slug: string) => Effect.Effect<void, WorksheetsError>) {
      return yield* transaction("unpublish", (client) => Effect.gen(function*() {
        const locked = yield* lockRow(client, account, id)
        if (locked === undefined) return false
        if (locked.published_slug !== null) yield* remove(locked.published_slug)
        yield* sql("record the unpublish", client, "UPDATE worksheets SET published_version = NULL, published_at = NULL WHERE id = $1", [id])
        return true
      }))
    }),

    share: Effect.fn("Worksheets.share")(function*(account: Account, id: string) {
      const at = new Date(yield* Clock.currentTimeMillis)
      const [shared] = yield* sql<{ share_token: string }>("share the worksheet", pool,
        "UPDATE worksheets SET share_token = COALESCE(share_token, $3), shared_at = COALESCE(shared_at, $4) WHERE id = $1 AND owner = $2 AND deleted_at IS NULL RETURNING share_token",
        [id, account.id, newShareToken(), at])
      return shared?.share_token
    }),

    unshare: Effect.fn("Worksheets.unshare")(function*(account: Account, id: string) {
      const rows = yield* sql("revoke the share link", pool,
        "UPDATE worksheets SET share_token = NULL, shared_at = NULL WHERE id = $1 AND owner = $2 AND deleted_at IS NULL RETURNING id", [id, account.id])
      return rows.length > 0
    }),

    byShare: Effect.fn("Worksheets.byShare")(function*(token: string) {
      const [found] = yield* sql<Row>("find the shared worksheet", pool,
        "SELECT id, workspace_id, path, title, version FROM worksheets WHERE share_token = $1 AND deleted_at IS NULL", [token])
      if (found === undefined) return undefined
      const content = yield* workspaces.read(found.workspace_id, found.path, found.version).pipe(Effect.mapError(fromWorkspace))
      return { content, version: found.version, title: found.title }
    }),

    createPermalink: Effect.fn("Worksheets.createPermalink")(function*(p: NewPermalink) {
      const [existing] = yield* sql<{ code: string; kernel: string }>("find the permalink", pool, "SELECT code, kernel FROM permalinks WHERE q = $1", [p.q])
      const same = (row: { code: string; kernel: string }): Effect.Effect<Permalinked, WorksheetsError> =>
        row.code === p.code && row.kernel === p.kernel
          ? Effect.succeed({ type: "exists" })
          : Effect.fail(new WorksheetsError({ reason: "Failed", message: `permalink ${p.q} already holds other code: two codes share an id` }))
      // an existing permalink costs nothing, so it is not counted
      if (existing !== undefined) return yield* same(existing)
      const now = yield* Clock.currentTimeMillis
      const since = new Date(now - p.windowMs)
      const recent = yield* sql<{ at: Date }>("count the address's permalinks", pool,
        "SELECT at FROM permalink_creations WHERE address = $1 AND at > $2 ORDER BY at DESC LIMIT $3", [p.address, since, p.max])
      const oldest = recent[p.max - 1]
      if (oldest !== undefined) return { type: "limited", retryAfterMs: Math.max(1, oldest.at.getTime() + p.windowMs - now) } satisfies Permalinked
      const inserted = yield* sql("store the permalink", pool,
        "INSERT INTO permalinks (q, code, kernel, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (q) DO NOTHING RETURNING q", [p.q, p.code, p.kernel, new Date(now)])
      if (inserted.length === 0) {
        // another request stored it in between
        const [raced] = yield* sql<{ code: string; kernel: string }>("find the permalink", pool, "SELECT code, kernel FROM permalinks WHERE q = $1", [p.q])
        return raced === undefined ? yield* new WorksheetsError({ reason: "Unavailable", message: `permalink ${p.q} was neither stored nor found` }) : yield* same(raced)
      }
      yield* sql("forget the address's old permalinks", pool, "DELETE FROM permalink_creations WHERE address = $1 AND at <= $2", [p.address, since])
      yield* sql("count the new permalink", pool, "INSERT INTO permalink_creations (address, at) VALUES ($1, $2)", [p.address, new Date(now)])
      return { type: "created" } satisfies Permalinked
    }),

    permalink: (q) =>
      sql<{ code: string; kernel: string }>("read the permalink", pool, "SELECT code, kernel FROM permalinks WHERE q = $1", [q])
        .pipe(Effect.map((rows) => rows[0] === undefined ? undefined : { code: rows[0].code, kernel: rows[0].kernel })),

    listFiles: (account) => listOf(workspaceOf(account)),

    readFile: Effect.fn("Worksheets.readFile")(function*(account: Account, path: string) {
      if (filePathProblem(path) !== undefined) return undefined
      const listing = yield* listOf(workspaceOf(account))
      if (listing.version === undefined || !listing.files.some((f) => f.path === path)) return undefined
      const version = listing.version
      const found = yield* workspaces.readMany(workspaceOf(account), version, [path]).pipe(Effect.mapError(fromWorkspace))
      const content = found.get(path)
      return content === undefined ? undefined : { content, version }
    }),

    writeFile: (account, path, content, base) => changeFile(account, path, content, base),
    deleteFile: (account, path, base) => changeFile(account, path, undefined, base),

    filesForSession: Effect.fn("Worksheets.filesForSession")(function*(accountId: string) {
      const listing = yield* listOf(`u-${accountId}`)
      const bytes = listing.files.reduce((sum, f) => sum + f.size, 0)
      if (listing.files.length > MAX_OPEN_FILES || bytes > MAX_OPEN_FILES_BYTES) return { type: "tooMany", count: listing.files.length, bytes } satisfies SessionFiles
      if (listing.version === undefined || listing.files.length === 0) return { type: "files", version: listing.version, files: [] } satisfies SessionFiles
      const paths = listing.files.map((f) => f.path)
      const found = yield* workspaces.readMany(`u-${accountId}`, listing.version, paths).pipe(Effect.mapError(fromWorkspace))
      const files = paths.flatMap((path) => {
        const content = found.get(path)
        return content === undefined ? [] : [{ path, content }]
      })
      return { type: "files", version: listing.version, files } satisfies SessionFiles
    }),

    saveSessionFile: Effect.fn("Worksheets.saveSessionFile")(function*(accountId: string, path: string, content: Uint8Array) {
      const [owner] = yield* sql<{ id: string; email: string; name: string | null; disabled_at: Date | null }>("find the account", pool,
        "SELECT id, email, name, disabled_at FROM accounts WHERE id = $1", [accountId])
      if (owner === undefined || owner.disabled_at !== null) {
        return yield* new WorksheetsError({ reason: "Failed", message: "the session's account is disabled or gone: nothing was saved" })
      }
      const saved = yield* changeFile({ id: owner.id, email: owner.email, name: owner.name }, path, content, undefined)
      return saved.type === "saved" ? saved.version : yield* new WorksheetsError({ reason: "Unavailable", message: `the save of ${path} did not go through; try again` })
    }),
  }
}

export class Worksheets extends Context.Service<Worksheets, WorksheetsService>()("sagews/worksheets/Worksheets") {
  /**
   * PostgreSQL at --db, with this backend's local copies of the workspaces in <data>/workspaces/<backend id> (one
   * process per directory, as Workspaces needs); or no worksheets at all.
   */
  static readonly layer = Layer.effect(Worksheets, Effect.gen(function*() {
    const { db, dataDir, id } = yield* Options
    if (db === undefined) return unavailableWorksheets
    const pool = yield* Effect.acquireRelease(
      Effect.gen(function*() {
        const pool = new pg.Pool({ connectionString: db, ...POOL })
        const context = yield* Effect.context<never>()
        pool.on("error", (e) => Effect.runForkWith(context)(Effect.logWarning(`worksheets connection: ${e.message}`)))
        return pool
      }),
      (pool) => Effect.ignore(Effect.timeoutOption(Effect.tryPromise(() => pool.end()), CLOSE_GRACE)),
    )
    const root = join(dataDir, "workspaces", id.replace(/[^A-Za-z0-9_-]/g, "-"))
    // built in this layer's scope: the workspaces' pool lives as long as the service
    const built = yield* Layer.build(Workspaces.layer({ root }).pipe(Layer.provide(WorkspaceStore.layer(db))))
    return postgresWorksheets(pool, Context.get(built, Workspaces))
  }))
}

type Calls<S> = { readonly [K in keyof S]: S[K] extends (...args: infer A) => Effect.Effect<infer R, infer E> ? (...args: A) => Promise<Result.Result<R, E>> : S[K] }

/** The Worksheets service as the promise-based HTTP handlers call it: each call settles with its Result, never rejects but when the backend stops. */
export type WorksheetCalls = Calls<WorksheetsService>

export const worksheetCalls = (w: WorksheetsService, run: <A>(effect: Effect.Effect<A>) => Promise<A>): WorksheetCalls => ({
  available: w.available,
  list: (account) => run(Effect.result(w.list(account))),
  create: (account, title, content) => run(Effect.result(w.create(account, title, content))),
  read: (account, id, version) => run(Effect.result(w.read(account, id, version))),
  save: (account, id, base, title, content) => run(Effect.result(w.save(account, id, base, title, content))),
  history: (account, id) => run(Effect.result(w.history(account, id))),
  remove: (account, id) => run(Effect.result(w.remove(account, id))),
  publish: (account, id, write) => run(Effect.result(w.publish(account, id, write))),
  unpublish: (account, id, remove) => run(Effect.result(w.unpublish(account, id, remove))),
  share: (account, id) => run(Effect.result(w.share(account, id))),
  unshare: (account, id) => run(Effect.result(w.unshare(account, id))),
  byShare: (token) => run(Effect.result(w.byShare(token))),
  createPermalink: (p) => run(Effect.result(w.createPermalink(p))),
  permalink: (q) => run(Effect.result(w.permalink(q))),
  listFiles: (account) => run(Effect.result(w.listFiles(account))),
  readFile: (account, path) => run(Effect.result(w.readFile(account, path))),
  writeFile: (account, path, content, base) => run(Effect.result(w.writeFile(account, path, content, base))),
  deleteFile: (account, path, base) => run(Effect.result(w.deleteFile(account, path, base))),
  filesForSession: (accountId) => run(Effect.result(w.filesForSession(accountId))),
  saveSessionFile: (accountId, path, content) => run(Effect.result(w.saveSessionFile(accountId, path, content))),
})
