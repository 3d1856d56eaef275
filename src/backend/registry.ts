// The Registry service: which worker holds which session, for whom, and whose worker link its output goes to, in
// PostgreSQL (src/db/sessions.ts), shared by every backend, so that any of them can route a resumed session and
// admission counts each client's and address's live sessions once; without a database, this backend's memory only.
import pg from "pg"
import { Clock, Context, Data, Duration, Effect, Layer, type Scope } from "effect"
import { listen } from "../db/listen.ts"
import * as backendRows from "../db/backends.ts"
import * as rows from "../db/sessions.ts"
import * as workers from "../db/workers.ts"
import type { Adopted } from "../db/sessions.ts"
import type { SessionKind } from "../protocol/browser.ts"
import { Ended, type EndedFrame } from "../protocol/worker.ts"
import { makeBacklog } from "./backlog.ts"
import { Options } from "./options.ts"

export interface SessionRecord {
  readonly id: string
  readonly workerId: string
  readonly kernel: SessionKind
  /** host:port of the worker, when the registry knows it */
  readonly address?: string | undefined
  readonly ended: boolean
  /** the tag of its end reason, when its end was recorded with one (Timeout, ClosedByUser, ...) */
  readonly endReason?: string | undefined
  /** whom it belongs to: `acct:<account id>` or `id:<client id>`, as admission counts it (undefined when not recorded) */
  readonly client?: string | undefined
}

/** a session about to be opened, and whom admission counts it for */
export interface NewSession {
  readonly id: string
  readonly workerId: string
  readonly kernel: SessionKind
  readonly client: string
  /** the requester's source address (not the worker's) */
  readonly from: string
}

/** most live sessions a client and an address may hold, over every backend */
export interface SessionCaps {
  readonly Client: number
  readonly Address: number
}

export type Reservation = rows.Admitted

/** what a backend recorded (`mine`: this one); `frame`: the worker's `ended`, when that backend heard it */
export type RegistryEvent = { readonly id: string; readonly mine: boolean } & (
  | { readonly type: "opened" | "attached" }
  | { readonly type: "ended"; readonly frame: EndedFrame | undefined }
)

/** Every call is best effort and never fails: a registry that is down is logged, and this backend's memory answers. */
export interface SessionRegistry {
  /** true when every backend shares it (PostgreSQL): its counts are every backend's, and it has events */
  readonly shared: boolean
  /** the worker is known (FK target of sessions.worker_id); called when this backend connects to it */
  worker(workerId: string, address: string): Effect.Effect<void>
  /**
   * Records a new session before its worker is asked to open it, so that every backend can find it as soon as the
   * client can name it. With `caps`, only while its client and its address hold fewer live sessions than those.
   */
  reserve(session: NewSession, caps: SessionCaps | undefined): Effect.Effect<Reservation>
  /** The session ended (`frame`: the worker's `ended`, passed on to the other backends). Only the first end counts. */
  ended(id: string, reason: string, frame?: EndedFrame): Effect.Effect<void>
  /** the session's output now comes to this backend (it resumed it) */
  attached(id: string): Effect.Effect<void>
  find(id: string): Effect.Effect<SessionRecord | undefined>
  /** this backend is alive; live sessions per worker id, over every backend */
  load(): Effect.Effect<Map<string, number>>
  /** the worker restarted: every session it had longer than `agoMs` ago ends with WorkerStopped */
  workerRestarted(workerId: string, agoMs: number): Effect.Effect<void>
  /** takes over up to `max` live sessions on `workers` whose backend stopped (nobody hears their output) */
  adopt(workers: ReadonlyArray<string>, max: number): Effect.Effect<ReadonlyArray<Adopted>>
  /** of `ids`, the live sessions whose output comes to this backend */
  mine(ids: ReadonlyArray<string>): Effect.Effect<ReadonlySet<string>>
  /** calls `f` with what every backend records, as PostgreSQL tells it, while the scope is open */
  subscribe(f: (event: RegistryEvent) => void): Effect.Effect<void, never, Scope.Scope>
  /** the workers that registered themselves and neither stopped nor were declared lost (none without PostgreSQL) */
  liveWorkers(): Effect.Effect<ReadonlyArray<workers.WorkerRow>>
  /** declares the worker's host lost if its heartbeat is stale and nobody did yet (its sessions end WorkerLost) */
  declareLost(workerId: string): Effect.Effect<void>
  /**
   * while the scope is open: `f` with each worker that comes, stops or is lost, and `resync` each time the listening
   * connection is made (at first and after a loss: notices missed meanwhile are read again from the table)
   */
  watchWorkers(f: (notice: workers.WorkerNotice) => void, resync: () => void): Effect.Effect<void, never, Scope.Scope>
}

/** A registry query failed: PostgreSQL could not be reached in time (Unavailable), or it refused the query (Query). */
export class RegistryError extends Data.TaggedError("RegistryError")<{
  readonly operation: string
  readonly reason: "Unavailable" | "Query"
  readonly detail: string
}> {
  override get message(): string {
    return `session registry (${this.operation}) ${this.reason === "Unavailable" ? "unreachable" : "refused the query"}: ${this.detail}`
  }
}

/** the pool: a few connections are plenty for a registry that sees a few writes per session; fail fast when PostgreSQL is away */
const POOL = { max: 4, connectionTimeoutMillis: 2_000, query_timeout: 5_000, idleTimeoutMillis: 10_000 }
/** at most one warning about a failing registry in this long: a PostgreSQL that is down must not flood the log */
const WARN_EVERY = Duration.seconds(10)
/** how long stopping waits for the pool's connections to close */
const CLOSE_GRACE = Duration.seconds(1)
/**
 * a backend whose heartbeat (each load read, every 2 s, and each session it records) is older than this has stopped:
 * its sessions are taken over. Ten missed beats, so that a slow PostgreSQL does not make a live backend look stopped;
 * well within the minute a worker keeps an ended session, so that the taker-over still hears an end it missed.
 */
const BACKEND_STALE_SECONDS = 20
/** ends remembered, so that a session's second end (its route's, after its link's) costs no query */
const ENDS_REMEMBERED = 10_000
/** ended sessions the memory registry keeps for find (a resume within the worker's minute replays up to the end) */
const ENDED_KEPT = 10_000

/** a set that forgets its oldest members past `max` */
const boundedSet = (max: number) => {
  const members = new Set<string>()
  return {
    /** true when `key` was not a member yet */
    add: (key: string): boolean => {
      if (members.has(key)) return false
      members.add(key)
      if (members.size > max) members.delete(members.values().next().value ?? key)
      return true
    },
  }
}

interface MemoryRecord extends SessionRecord {
  readonly client: string
  /** the requester's source address */
  readonly from: string
  /** epoch ms, from Clock */
  readonly at: number
}

/** One backend's memory: with `caps`, a reservation counts the live sessions it recorded itself. */
export const memoryRegistry = (): SessionRegistry => {
  const sessions = new Map<string, MemoryRecord>()
  const ended: Array<string> = []
  const live = (f: (r: MemoryRecord) => boolean): number => [...sessions.values()].filter((r) => !r.ended && f(r)).length
  const end = (r: MemoryRecord): void => {
    sessions.set(r.id, { ...r, ended: true })
    ended.push(r.id)
    if (ended.length > ENDED_KEPT) sessions.delete(ended.shift() ?? r.id)
  }
  return {
    shared: false,
    worker: () => Effect.void,
    reserve: (s, caps) =>
      Effect.map(Clock.currentTimeMillis, (at): Reservation => {
        if (caps !== undefined) {
          const byClient = live((r) => r.client === s.client)
          if (byClient >= caps.Client) return { ok: false, scope: "Client", count: byClient }
          const byAddress = live((r) => r.from === s.from)
          if (byAddress >= caps.Address) return { ok: false, scope: "Address", count: byAddress }
        }
        sessions.set(s.id, { id: s.id, workerId: s.workerId, kernel: s.kernel, client: s.client, from: s.from, at, ended: false })
        return { ok: true }
      }),
    ended: (id) =>
      Effect.sync(() => {
        const r = sessions.get(id)
        if (r !== undefined && !r.ended) end(r)
      }),
    attached: () => Effect.void,
    find: (id) => Effect.sync(() => sessions.get(id)),
    load: () =>
      Effect.sync(() => {
        const load = new Map<string, number>()
        for (const r of sessions.values()) if (!r.ended) load.set(r.workerId, (load.get(r.workerId) ?? 0) + 1)
        return load
      }),
    workerRestarted: (workerId, agoMs) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        for (const r of [...sessions.values()]) if (r.workerId === workerId && !r.ended && r.at < now - agoMs) end(r)
      }),
    adopt: () => Effect.succeed([]),
    mine: (ids) => Effect.sync(() => new Set(ids.filter((id) => sessions.get(id)?.ended === false))),
    subscribe: () => Effect.void,
    liveWorkers: () => Effect.succeed([]),
    declareLost: () => Effect.void,
    watchWorkers: () => Effect.void,
  }
}

/** a notice (src/db/sessions.ts) as an event; undefined for anything else on the channel */
const parseEvent = (payload: string, me: string): RegistryEvent | undefined => {
  let raw: unknown
  try {
    raw = JSON.parse(payload)
  } catch {
    return undefined
  }
  if (typeof raw !== "object" || raw === null || !("type" in raw) || !("id" in raw) || !("backend" in raw)) return undefined
  const { type, id, backend } = raw
  if (typeof id !== "string" || typeof backend !== "string") return undefined
  const mine = backend === me
  if (type === "opened" || type === "attached") return { type, id, mine }
  if (type !== "ended") return undefined
  const frame = "frame" in raw ? Ended.safeParse(raw.frame) : undefined
  return { type, id, mine, frame: frame?.success === true ? frame.data : undefined }
}

/** a write of the registry that must reach PostgreSQL (src/backend/backlog.ts) */
type Write =
  | { readonly op: "record"; readonly session: NewSession }
  | { readonly op: "end"; readonly id: string; readonly reason: string; readonly frame: EndedFrame | undefined }
  | { readonly op: "attach"; readonly id: string }

const UNCAPPED = { Client: Infinity, Address: Infinity }

/**
 * `me`: this backend's id (whose worker links the `backend` column names). `maxAgeSeconds`: no session lives longer
 * than the workers' wall limit; an older row whose end nobody recorded is not counted.
 */
const postgresRegistry = (
  pool: pg.Pool,
  url: string,
  me: string,
  maxAgeSeconds: number,
  /** where haproxies on other hosts reach this backend (the registry's `backends` row); none: it is not announced */
  announce?: { readonly host: string; readonly address: string },
): Effect.Effect<SessionRegistry, never, Scope.Scope> =>
  Effect.gen(function*() {
    const local = memoryRegistry()
    const ends = boundedSet(ENDS_REMEMBERED)
    const row = (s: NewSession) => ({ id: s.id, workerId: s.workerId, kernel: s.kernel, client: s.client, address: s.from, backend: me })
    const subscribers = new Set<(event: RegistryEvent) => void>()
    let warned: number | undefined
    const query = <A>(operation: string, run: () => Promise<A>) =>
      Effect.tryPromise({
        try: run,
        catch: (e) =>
          new RegistryError({ operation, reason: e instanceof pg.DatabaseError ? "Query" : "Unavailable", detail: e instanceof Error ? e.message : String(e) }),
      })
    const warn = (message: string) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        if (warned !== undefined && now - warned <= Duration.toMillis(WARN_EVERY)) return
        warned = now
        yield* Effect.logWarning(message)
      })
    /** the query, or on a RegistryError (warned about now and then) what this backend's memory says */
    const guarded = <A>(run: Effect.Effect<A, RegistryError>, fallback: Effect.Effect<A>): Effect.Effect<A> =>
      Effect.catchTag(run, "RegistryError", (error) => Effect.andThen(warn(`${error.message}; using this backend's memory`), fallback))

    /** the writes that must reach PostgreSQL, if not now then once it is back (src/backend/backlog.ts) */
    const backlog = yield* makeBacklog<Write>(
      (w) => {
        const made = w.op === "record"
          ? Effect.asVoid(query("record", () => rows.admit(pool, row(w.session), UNCAPPED, maxAgeSeconds)))
          : w.op === "end"
          ? Effect.asVoid(query("end", () => rows.end(pool, w.id, w.reason, me, w.frame)))
          : query("attach", () => rows.attach(pool, w.id, me))
        return Effect.mapError(made, (e) => ({ unavailable: e.reason === "Unavailable", message: e.message }))
      },
      (w) => (w.op === "record" ? `the record of session ${w.session.id}` : `the ${w.op} of session ${w.id}`),
    )

    // what a previous life of this backend had is nobody's now: its links went with it
    yield* guarded(query("release", () => rows.release(pool, me)), Effect.void)
    yield* Effect.addFinalizer(() => Effect.ignore(Effect.timeoutOption(query("release", () => rows.release(pool, me)), CLOSE_GRACE)))
    /** announced once PostgreSQL took it (at start, else with a later load read); retired when the backend stops */
    let announced = announce === undefined
    const announceOnce = Effect.suspend(() =>
      announced || announce === undefined
        ? Effect.void
        : guarded(Effect.map(query("announce", () => backendRows.announce(pool, { id: me, ...announce })), () => void (announced = true)), Effect.void)
    )
    yield* announceOnce
    if (announce !== undefined) yield* Effect.addFinalizer(() => Effect.ignore(Effect.timeoutOption(query("retire", () => backendRows.retire(pool, me)), CLOSE_GRACE)))

    yield* listen(
      url,
      rows.SESSIONS_CHANNEL,
      (payload) => {
        const event = parseEvent(payload, me)
        if (event === undefined) return
        if (event.type === "ended" && ends.add(event.id)) Effect.runSync(local.ended(event.id, "elsewhere"))
        for (const f of subscribers) f(event)
      },
      (error) => warn(`session registry: listening to the other backends: ${error.message}; connecting again (meanwhile a session ended through another backend keeps its route here until its detach grace)`),
    )

    return {
      shared: true,
      worker: (workerId, address) => {
        const colon = address.lastIndexOf(":")
        return guarded(
          Effect.asVoid(query("worker", () =>
            pool.query(
              `INSERT INTO workers (id, host, port) VALUES ($1, $2, $3)
               ON CONFLICT (id) DO NOTHING`,
              [workerId, address.slice(0, colon), Number(address.slice(colon + 1))],
            ))),
          Effect.void,
        )
      },
      reserve: (s, caps) =>
        (backlog.size() > 0 ? Effect.fail(new RegistryError({ operation: "reserve", reason: "Unavailable", detail: "older writes still wait for PostgreSQL" })) : Effect.void).pipe(
          Effect.andThen(query("reserve", () => rows.admit(pool, row(s), caps ?? UNCAPPED, maxAgeSeconds))),
          Effect.tap((r) => (r.ok ? local.reserve(s, undefined) : Effect.void)),
          // PostgreSQL away: what this backend holds itself is all it can count; the record is made once it is back
          Effect.catchTag("RegistryError", (error) =>
            Effect.gen(function*() {
              yield* warn(`${error.message}; counting this backend's own sessions`)
              const r = yield* local.reserve(s, caps)
              if (r.ok) yield* backlog.write({ op: "record", session: s })
              return r
            })),
        ),
      ended: (id, reason, frame) =>
        Effect.suspend(() => {
          if (!ends.add(id)) return Effect.void
          return Effect.andThen(local.ended(id, reason), backlog.write({ op: "end", id, reason, frame }))
        }),
      attached: (id) => backlog.write({ op: "attach", id }),
      find: (id) =>
        guarded(
          Effect.flatMap(
            query("find", () =>
              pool.query<{ worker_id: string | null; kernel: SessionKind; ended: boolean; end_reason: string | null; client: string | null; address: string | null; host: string | null; port: number | null }>(
                `SELECT s.worker_id, s.kernel, s.ended_at IS NOT NULL AS ended, s.end_reason, s.client, w.address, w.host, w.port
                 FROM sessions s LEFT JOIN workers w ON w.id = s.worker_id WHERE s.id = $1`,
                [id],
              )),
            (result) => {
              const row = result.rows[0]
              if (row === undefined || row.worker_id === null) return local.find(id)
              const address = row.address ?? (row.host !== null && row.port !== null ? `${row.host}:${row.port}` : undefined)
              return Effect.succeed<SessionRecord>({
                id,
                workerId: row.worker_id,
                kernel: row.kernel,
                address,
                ended: row.ended,
                ...(row.end_reason !== null ? { endReason: row.end_reason } : {}),
                ...(row.client !== null ? { client: row.client } : {}),
              })
            },
          ),
          local.find(id),
        ),
      load: () => Effect.andThen(announceOnce, guarded(query("load", () => rows.beatAndLoad(pool, me, maxAgeSeconds)), local.load())),
      workerRestarted: (workerId, agoMs) =>
        Effect.andThen(
          local.workerRestarted(workerId, agoMs),
          guarded(
            Effect.flatMap(query("worker restarted", () => rows.endWorkerSessions(pool, workerId, agoMs / 1000, me)), (ids) =>
              Effect.sync(() => {
                for (const id of ids) ends.add(id)
              })),
            Effect.void,
          ),
        ),
      adopt: (workers, max) =>
        workers.length === 0 ? Effect.succeed([]) : guarded(query("adopt", () => rows.adopt(pool, me, workers, BACKEND_STALE_SECONDS, maxAgeSeconds, max)), Effect.succeed([])),
      mine: (ids) => (ids.length === 0 ? Effect.succeed(new Set<string>()) : guarded(query("mine", () => rows.mine(pool, me, ids)), local.mine(ids))),
      subscribe: (f) => Effect.acquireRelease(Effect.sync(() => void subscribers.add(f)), () => Effect.sync(() => void subscribers.delete(f))),
      liveWorkers: () => guarded(query("live workers", () => workers.live(pool)), Effect.succeed([])),
      declareLost: (workerId) =>
        guarded(
          Effect.flatMap(query("declare lost", () => workers.declareLost(pool, workerId, workers.WORKER_STALE_SECONDS, me)), (declared) =>
            declared === undefined
              ? Effect.void
              : Effect.andThen(
                Effect.sync(() => declared.sessions.forEach((id) => ends.add(id))),
                Effect.logWarning(`declared ${workerId} on ${declared.host} lost: no heartbeat for ${workers.WORKER_STALE_SECONDS} s and no answer on its link; ${declared.sessions.length} session(s) ended WorkerLost`),
              )),
          Effect.void,
        ),
      watchWorkers: (f, resync) =>
        listen(
          url,
          workers.WORKERS_CHANNEL,
          (payload) => {
            let raw: unknown
            try {
              raw = JSON.parse(payload)
            } catch {
              return
            }
            const notice = workers.WorkerNotice.safeParse(raw)
            if (notice.success) f(notice.data)
          },
          (error) => warn(`worker registry: listening for workers: ${error.message}; connecting again`),
          resync,
        ),
    }
  })

export class Registry extends Context.Service<Registry, SessionRegistry>()("sagews/backend/Registry") {
  /** PostgreSQL at --db (its pool ended with the layer, waiting at most CLOSE_GRACE), or memory */
  static readonly layer = Layer.effect(Registry, Effect.gen(function*() {
    const { db, sessionMaxAge, id, advertise, machine } = yield* Options
    if (db === undefined) return memoryRegistry()
    const pool = yield* Effect.acquireRelease(
      Effect.gen(function*() {
        const pool = new pg.Pool({ connectionString: db, ...POOL })
        // an idle connection that breaks: the next query reconnects, or fails and falls back
        const context = yield* Effect.context<never>()
        pool.on("error", (e) => Effect.runForkWith(context)(Effect.logWarning(`registry connection: ${e.message}`)))
        return pool
      }),
      (pool) => Effect.ignore(Effect.timeoutOption(Effect.tryPromise(() => pool.end()), CLOSE_GRACE)),
    )
    return yield* postgresRegistry(pool, db, id, sessionMaxAge, advertise !== undefined ? { host: machine, address: advertise } : undefined)
  }))
}
