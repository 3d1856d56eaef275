// The supervised child that keeps one haproxy's remote backends equal to the registry's live ones: read on start, on
// each NOTIFY of a backend going up or down, and on a slow recheck that drops backends whose heartbeat stopped;
// applied through haproxy's runtime API, never by a reload, and applied again when haproxy comes back without them.
import { Clock, Duration, Effect, Queue, Ref, Schedule } from "effect"
import { haproxyPaths } from "../../actors/haproxy.ts"
import { listen } from "../db/listen.ts"
import { redact } from "../db/client.ts"
import { type DbTarget, serviceUrl } from "../db/credentials.ts"
import type { ChildSpec } from "../../supervisors/child.ts"
import { fiberChild } from "../../supervisors/fiber.ts"
import { applyServers, wantedServers, type WantedServer } from "./apply.ts"
import { BACKENDS_CHANNEL, type LiveBackend, runningBackends, STALE_AFTER } from "./registry.ts"

export interface HaproxyServersOptions {
  /** the data dir of the haproxy to keep (its runtime API is `<data>/run/haproxy-admin.sock`) */
  readonly dataDir: string
  /** the registry's PostgreSQL, as the backends get it (the own cluster's port, or a URL); its password is read at start */
  readonly db: DbTarget
  /** the registry ids of this host's own backends: the config names them, so they are not added again */
  readonly local: ReadonlyArray<string>
  /** default "haproxy-servers" */
  readonly id?: string
}

/**
 * The registry is read again this often even without a NOTIFY: a host that died cannot say so, so its backends go
 * when their heartbeat is older than STALE_AFTER (at most STALE_AFTER + this after their last beat); it also brings
 * a backend whose NOTIFY was missed (the LISTEN connection was being made again).
 */
export const REGISTRY_RECHECK = Schedule.spaced("5 seconds")
/** Between reads of a registry that failed (PostgreSQL down): haproxy keeps its servers meanwhile. */
export const REGISTRY_RETRY = Schedule.min([Schedule.exponential("250 millis", 2), Schedule.spaced("5 seconds")])
/**
 * haproxy's servers are compared with the wanted ones this often (a local socket, ~1 ms): a haproxy restarted or
 * reloaded has lost its dynamic servers, and gets them back within this of answering again.
 */
export const HAPROXY_RECHECK = "1 second"
/** A failure that repeats (PostgreSQL down, haproxy restarting) is logged at most this often, per kind. */
export const LOG_EVERY_MS = 5_000

/** Logs `message` unless this logger logged within LOG_EVERY_MS. */
const throttledWarning = () => {
  let last = Number.NEGATIVE_INFINITY
  return (message: string) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      if (now - last < LOG_EVERY_MS) return Effect.void
      last = now
      return Effect.logWarning(message)
    })
}

const describeServer = (w: WantedServer) => `${w.backendId} (${w.address.host}:${w.address.port})`

const life = (options: HaproxyServersOptions) =>
  Effect.gen(function*() {
    const socket = haproxyPaths(options.dataDir).adminSocket
    const url = yield* Effect.tryPromise({
      try: () => serviceUrl(options.dataDir, options.db),
      catch: (e) => `the registry's database password: ${e instanceof Error ? e.message : String(e)}`,
    })
    /** the registry's backends as of the last read; undefined before the first one succeeds (keep what haproxy has) */
    const wanted = yield* Ref.make<ReadonlyArray<WantedServer> | undefined>(undefined)
    const readRegistry = yield* Queue.sliding<void>(1)
    const applyNow = yield* Queue.sliding<void>(1)
    const dbWarning = throttledWarning()
    const haproxyWarning = throttledWarning()
    const invalidSeen = new Set<string>()
    const db = redact(url)

    yield* listen(
      url,
      BACKENDS_CHANNEL,
      () => void Queue.offerUnsafe(readRegistry, undefined),
      (error) => dbWarning(`registry ${db}: listening on ${BACKENDS_CHANNEL}: ${error.message}; connecting again (haproxy keeps its servers meanwhile)`),
    )

    // After PostgreSQL was away, every heartbeat looks old until the backends have written theirs again: for
    // STALE_AFTER from the first good read, a backend haproxy has is not dropped for being stale.
    let failedSince: number | undefined
    let backAt = Number.NEGATIVE_INFINITY
    const keep = (rows: ReadonlyArray<LiveBackend>, had: ReadonlyArray<WantedServer> | undefined, now: number) => {
      const inGrace = now - backAt < Duration.toMillis(STALE_AFTER)
      const served = new Set(had?.map((w) => w.backendId))
      return rows.filter((r) => r.fresh || (inGrace && served.has(r.id)))
    }
    const read = runningBackends(url, options.local).pipe(
      Effect.tapError((error) =>
        Effect.andThen(
          Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => void (failedSince ??= now))),
          dbWarning(`registry ${db}: ${error.operation}: ${error.message}; haproxy keeps its servers, reading again soon`),
        )
      ),
      Effect.retry(REGISTRY_RETRY),
      Effect.flatMap((rows) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          if (failedSince !== undefined) {
            yield* Effect.logInfo(`registry ${db} answers again after ${now - failedSince} ms`)
            failedSince = undefined
            backAt = now
          }
          const { servers, invalid } = wantedServers(keep(rows, yield* Ref.get(wanted), now))
          for (const reason of invalid) {
            if (invalidSeen.has(reason)) continue
            invalidSeen.add(reason)
            yield* Effect.logWarning(`${reason}: not added to haproxy`)
          }
          yield* Ref.set(wanted, servers)
          Queue.offerUnsafe(applyNow, undefined)
        })
      ),
    )
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(Queue.take(readRegistry), read)))
    yield* Effect.forkScoped(Effect.repeat(Effect.sync(() => void Queue.offerUnsafe(readRegistry, undefined)), REGISTRY_RECHECK))

    const pass = Effect.gen(function*() {
      const servers = yield* Ref.get(wanted)
      if (servers === undefined) return
      const result = yield* applyServers(socket, servers)
      const names = new Map(servers.map((w) => [w.name, w]))
      const said = (what: string, list: ReadonlyArray<string>) =>
        list.length === 0 ? Effect.void : Effect.logInfo(`${what}: ${list.map((s) => {
          const w = names.get(s.slice(s.indexOf("/") + 1))
          return w === undefined ? s : `${s} = ${describeServer(w)}`
        }).join(", ")}`)
      yield* said("remote backends added to haproxy", result.added)
      yield* said("remote backends taken out of maintenance", result.enabled)
      yield* said(`remote backends removed from haproxy (stopped, no heartbeat for ${Duration.toSeconds(STALE_AFTER)} s, or at a new address)`, result.removed)
      for (const error of result.errors) yield* haproxyWarning(`${error.message}; trying again within ${HAPROXY_RECHECK}`)
    }).pipe(Effect.catch((error) => haproxyWarning(`${error.message}; its servers are set again once it answers`)))

    Queue.offerUnsafe(readRegistry, undefined)
    return yield* Effect.forever(Effect.andThen(Effect.timeoutOption(Queue.take(applyNow), HAPROXY_RECHECK), pass))
  }).pipe(Effect.annotateLogs({ child: options.id ?? "haproxy-servers" }))

/**
 * The web supervisor's child that gives the haproxy of `dataDir` every other host's backends. Start it after haproxy;
 * it needs neither to be up (it waits for both), and never restarts or reloads haproxy.
 */
export const haproxyServersChild = (options: HaproxyServersOptions): ChildSpec =>
  fiberChild({ id: options.id ?? "haproxy-servers", run: life(options) })
