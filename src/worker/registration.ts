// The worker in the cluster's registry (src/db/workers.ts): registered once it listens, with where backends reach
// it, its kernels and their versions and its capacity; a heartbeat with its load every WORKER_HEARTBEAT_MS; `stopped`
// when it stops. A worker the cluster declared lost while it was away (its host cut off) ends, once it is heard again,
// the sessions the cluster ended for it (WorkerLost: nobody may resume them half-way), then registers again.
import pg from "pg"
import { Clock, Context, Duration, Effect, Layer, Schedule } from "effect"
import { ExitReason } from "../../supervisors/exit.ts"
import * as workers from "../db/workers.ts"
import { kernelVersions } from "../protocol/versions.ts"
import { WorkerSettings } from "./config.ts"
import { log } from "./log.ts"
import { BackendLinks } from "./server.ts"
import { Sessions } from "./sessions.ts"

/** one connection is plenty for a beat a second; fail fast when PostgreSQL is away, the next beat tries again */
const POOL = { max: 1, connectionTimeoutMillis: 2_000, query_timeout: 3_000, idleTimeoutMillis: 30_000 }
/** the heartbeat's own schedule */
const HEARTBEAT = Schedule.spaced(Duration.millis(workers.WORKER_HEARTBEAT_MS))
/** at most one warning about an unreachable registry in this long */
const WARN_EVERY_MS = 10_000
/** how long stopping waits to tell the registry */
const STOP_GRACE = Duration.seconds(2)

export interface RegistrationShape {
  /** the id the worker registered under, when it registers (a database was given) */
  readonly id: string | undefined
}

export class Registration extends Context.Service<Registration, RegistrationShape>()("sagews/worker/Registration") {
  static readonly layer = Layer.effect(Registration, Effect.suspend(() => makeRegistration))
}

const makeRegistration = Effect.gen(function*() {
  const config = yield* WorkerSettings
  if (config.db === undefined) return { id: undefined } satisfies RegistrationShape
  const links = yield* BackendLinks
  const sessions = yield* Sessions
  const id = config.name ?? config.id
  const versions = yield* Effect.promise(kernelVersions)
  const entry: workers.WorkerEntry = {
    id,
    host: config.machine,
    address: `${config.host}:${links.port}`,
    tls: config.tls !== undefined,
    kernels: sessions.kinds.map((kind) => ({ kind, version: versions[kind] })),
    capacity: config.maxSessions,
  }
  const pool = yield* Effect.acquireRelease(
    Effect.sync(() => {
      const p = new pg.Pool({ connectionString: config.db, ...POOL })
      // an idle connection PostgreSQL dropped: the next query connects again
      p.on("error", (error) => log("debug", `registry connection: ${error.message}`))
      return p
    }),
    (p) => Effect.promise(() => p.end().catch(() => undefined)),
  )
  let warned: number | undefined
  let registered = false
  const attempt = <A>(what: string, run: () => Promise<A>): Effect.Effect<A | undefined> =>
    Effect.tryPromise(run).pipe(
      Effect.catch((error) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          if (warned === undefined || now - warned > WARN_EVERY_MS) {
            warned = now
            log("warn", `worker registry (${what}): ${error.cause instanceof Error ? error.cause.message : String(error.cause)}; trying again every ${workers.WORKER_HEARTBEAT_MS} ms`)
          }
          return undefined
        })
      ),
    )

  /** the cluster ended sessions of ours while we were cut off: they end here too, never resumed half-way */
  const endDeclared = Effect.gen(function*() {
    const ended = yield* attempt("declared ends", () => workers.endedOf(pool, id, sessions.ids()))
    if (ended === undefined) return false
    for (const session of ended) yield* sessions.close(session, ExitReason.WorkerLost({ host: config.machine }))
    if (ended.length > 0) log("warn", `the cluster declared this worker lost while it was cut off: ended ${ended.length} session(s) it had ended for us (WorkerLost)`)
    return true
  })

  const beat = Effect.gen(function*() {
    if (!registered) {
      registered = (yield* attempt("register", () => workers.register(pool, entry).then(() => true))) === true
      if (registered) log("info", `registered as ${id} at ${entry.address}${entry.tls ? " (TLS)" : ""}`)
      return
    }
    const state = yield* attempt("heartbeat", () => workers.heartbeat(pool, id, sessions.ids().length))
    if (state === "lost") {
      if (yield* endDeclared) registered = false
    } else if (state === "gone") registered = false
  })
  yield* Effect.forkScoped(Effect.repeat(beat, HEARTBEAT))
  yield* Effect.addFinalizer(() =>
    Effect.ignore(Effect.timeoutOption(Effect.tryPromise(() => workers.stopped(pool, id)), STOP_GRACE))
  )
  return { id } satisfies RegistrationShape
})
