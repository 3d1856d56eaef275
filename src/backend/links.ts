// The WorkerLinks service: one supervised link per configured worker address, children of the links supervisor
// (supervisors/), restarted with its backoff. A link's life: connect and authenticate, register the worker, route
// its frames, and exit when the connection closes. Placement (load.ts) picks among the links that are up.
// The links also keep the registry true for the sessions whose output comes to them (attachments.ts).
import { readFileSync } from "node:fs"
import { tlsPaths } from "../cluster/ca.ts"
import { Clock, Context, Data, Duration, Effect, Exit, Fiber, FiberSet, Layer, Queue, Schedule } from "effect"
import type { KernelKind, SessionKind } from "../protocol/browser.ts"
import type { DynamicSupervisorSpec } from "../../supervisors/declaration.ts"
import { makeDynamic } from "../../supervisors/dynamic.ts"
import { fiberChild } from "../../supervisors/fiber.ts"
import type { Escalation } from "../../supervisors/supervisor.ts"
import type { WorkerRow } from "../db/workers.ts"
import { connectWorker, type WorkerClient } from "../wire/client.ts"
import { ensureWorkerSecret } from "../wire/secret.ts"
import { LOAD_REFRESH, LOAD_REFRESH_SOON, makeLoadBook, pickByKey, type WorkerLoad } from "./load.ts"
import { type BackendOptions, Options } from "./options.ts"
import { Registry } from "./registry.ts"
import { isStateful, Router } from "./router.ts"
import { adoptEvery, makeAttachments } from "./attachments.ts"

/**
 * Why a link ended: the worker could not be reached or closed on us before authenticating (Unreachable), refused
 * our answer to its challenge (AuthFailed), did not answer in time (Timeout), or the connection was lost (Lost).
 */
export class WorkerLinkError extends Data.TaggedError("WorkerLinkError")<{
  /** the worker's host:port */
  readonly worker: string
  readonly reason: "Unreachable" | "AuthFailed" | "Timeout" | "Lost"
  readonly detail: string
}> {
  override get message(): string {
    return this.reason === "Lost" ? `lost worker ${this.worker}: ${this.detail}` : `cannot reach worker ${this.worker}: ${this.detail}`
  }
}

/** The worker secret (<data>/secret/worker.key) could not be read or created: no link can authenticate. */
export class WorkerSecretError extends Data.TaggedError("WorkerSecretError")<{
  readonly dataDir: string
  readonly reason: "Unreadable"
  readonly detail: string
}> {
  override get message(): string {
    return `cannot read or create the worker secret in ${this.dataDir}/secret: ${this.detail}`
  }
}

export interface Links {
  /** the link to `workerId`, while it is up */
  client(workerId: string): WorkerClient | undefined
  /** the links that are up, in the order of --workers */
  connected(): ReadonlyArray<WorkerClient>
  /** the least loaded connected worker that runs `kind`; `except`: links not to use (one that refused because it stops) */
  pick(kind: SessionKind, except?: ReadonlySet<WorkerClient>): WorkerClient | undefined
  /**
   * the connected worker that runs `kind` which `key` hashes to (rendezvous hashing): every backend picks the same one
   * for the same key while the same workers are up
   */
  pickKeyed(kind: KernelKind, key: string, except?: ReadonlySet<WorkerClient>): WorkerClient | undefined
  /**
   * resolves true once a worker that runs `kind` is connected (at once if one is); false after `ms`, or once every
   * link is up and none runs it; the links in `except` do not count (a new link to the same worker does)
   */
  whenConnected(kind: KernelKind, ms: number, except?: ReadonlySet<WorkerClient>): Promise<boolean>
  /** +1 when this backend places a session or a run on `workerId`, -1 when it ends */
  addLoad(workerId: string, delta: number, kind: "session" | "run"): void
  /** sessions and runs per connected worker: this backend's own, and all live sessions per the registry */
  load(): Record<string, WorkerLoad>
  kernels(): Array<KernelKind>
  /** Resolves when the links supervisor has stopped; fails if it gave up (it cannot: see linksSupervisor). */
  readonly await: Effect.Effect<void, Escalation>
}

/** seconds over which the links supervisor counts restarts */
const LINK_PERIOD = 10
/** a link that stayed up this long starts its backoff over: a worker that takes us and drops us at once is not hammered */
const LINK_RESET_AFTER = "10 seconds"
/** ms a link has to close its connection when the backend stops (socket.end: nothing to wait for) */
const LINK_SHUTDOWN = 1_000
/** the most links one backend keeps (workers of every host): what the links supervisor's intensity is budgeted for */
const MAX_LINKS = 256
/**
 * A link pings its worker this often; LINK_SILENT_AFTER pings in a row without a pong (each given LINK_PING_TIMEOUT)
 * end it as silent: a host cut off (a pulled cable, a dead machine) closes no connection, so only silence tells.
 */
const LINK_PING = Schedule.spaced("1 second")
const LINK_PING_TIMEOUT = Duration.seconds(1)
const LINK_SILENT_AFTER = 2
/** while a silent worker's link is down, the registry is asked this often whether its heartbeat stopped too */
const LOST_CHECK = Schedule.spaced("1 second")

/**
 * The links supervisor, with the backoff of --workerReconnect. A worker may be down for hours; that must never make
 * the supervisor give up. Every restart delay is at least `initial` (the backoff starts there and only grows until
 * a reset), so one link restarts at most LINK_PERIOD / initial + 1 times in a window: the intensity allows that
 * for every link at once.
 */
const linksSupervisor = (reconnect: BackendOptions["workerReconnect"]): DynamicSupervisorSpec => ({
  id: "links",
  intensity: MAX_LINKS * (Math.ceil((LINK_PERIOD * 1000) / reconnect.initial) + 1),
  period: LINK_PERIOD,
  backoff: { initial: reconnect.initial, factor: 2, max: reconnect.max, resetAfter: LINK_RESET_AFTER },
  maxChildren: MAX_LINKS,
})

const describeClient = (client: WorkerClient): string => `isolation ${client.isolation}, kernels ${client.kernels.join(",")}`

/** A worker a link goes to: one of --workers, or one the registry told of (over TLS when it registered so). */
interface Target {
  readonly address: string
  readonly tls: boolean
  /** from the registry: its link ends for good when the worker stops or its host is lost */
  readonly discovered: boolean
  /** the worker's id, once known (from the registry, or its hello) */
  workerId: string | undefined
  /** the worker said it stops: when its connection closes, the link ends instead of reconnecting */
  stopping: boolean
}

/** the cluster's CA (made at init, or fetched when the host joined), for workers that speak TLS; none before it exists */
const caFile = (dataDir: string): Buffer | undefined => {
  try {
    return readFileSync(tlsPaths(dataDir).caCert)
  } catch {
    return undefined
  }
}

export class WorkerLinks extends Context.Service<WorkerLinks, Links>()("sagews/backend/WorkerLinks") {
  static readonly layer = Layer.effect(WorkerLinks, Effect.gen(function*() {
    const options = yield* Options
    const router = yield* Router
    const registry = yield* Registry
    const secret = yield* Effect.tryPromise({
      try: () => ensureWorkerSecret(options.dataDir),
      catch: (e) => new WorkerSecretError({ dataDir: options.dataDir, reason: "Unreadable", detail: e instanceof Error ? e.message : String(e) }),
    })
    const clock = yield* Clock.Clock
    const now = () => clock.currentTimeMillisUnsafe()
    const book = makeLoadBook(now)
    // what the links start in the background (registry writes, probes, grace periods) stops with them
    const run = yield* FiberSet.makeRuntime<never>()
    const attachments = makeAttachments({ registry, router, run: (effect) => run(effect), now, workerLostGrace: options.workerLostGrace })
    /** every worker a link goes to, by address: --workers first, then those the registry told of */
    const targets = new Map<string, Target>()
    /** the links that are up, by address */
    const up = new Map<string, WorkerClient>()
    const connected = (): Array<WorkerClient> => [...targets.keys()].flatMap((address) => up.get(address) ?? [])
    /** called when a link comes up */
    const waiting = new Set<() => void>()
    const runs = (kind: KernelKind) => (c: WorkerClient): boolean => c.kernels.includes(kind)
    const usable = (except: ReadonlySet<WorkerClient> | undefined): Array<WorkerClient> => (except === undefined ? connected() : connected().filter((c) => !except.has(c)))
    /** the workers whose links went silent, each with the fiber asking the registry whether its host is lost */
    const silent = new Map<string, Fiber.Fiber<void>>()
    const ca = yield* Effect.sync(() => caFile(options.dataDir))

    /** Pings until LINK_SILENT_AFTER in a row go unanswered; then it fails, with how long the worker was silent. */
    const watchdog = (client: WorkerClient) =>
      Effect.gen(function*() {
        let missed = 0
        yield* Effect.repeat(
          Effect.gen(function*() {
            const answered = yield* Effect.timeoutOption(Effect.promise(() => client.ping().catch(() => -1)), LINK_PING_TIMEOUT)
            missed = answered._tag === "Some" && answered.value >= 0 ? 0 : missed + 1
            if (missed >= LINK_SILENT_AFTER) return yield* Effect.fail(`no answer to ${missed} pings of ${Duration.toMillis(LINK_PING_TIMEOUT)} ms`)
          }),
          LINK_PING,
        )
      })

    /** The worker went silent: until its link is back, ask the registry whether its host is lost (its heartbeat stopped too). */
    const suspect = (workerId: string): void => {
      if (!registry.shared || silent.has(workerId)) return
      silent.set(workerId, run(Effect.repeat(registry.declareLost(workerId), LOST_CHECK).pipe(Effect.asVoid)))
    }
    const cleared = (workerId: string): void => {
      const fiber = silent.get(workerId)
      silent.delete(workerId)
      if (fiber !== undefined) run(Fiber.interrupt(fiber))
    }

    /** One link's life; it ends (and its supervisor starts it again after the backoff) when the connection does. */
    const life = (target: Target) =>
      Effect.gen(function*() {
        const { address } = target
        const colon = address.lastIndexOf(":")
        const host = address.slice(0, colon)
        const client = yield* connectWorker({
          host,
          port: Number(address.slice(colon + 1)),
          secret,
          timeout: options.workerConnectTimeout,
          ...(target.tls ? { tls: { ca } } : {}),
        }).pipe(
          Effect.tapError((e) => Effect.sync(() => (e.reason === "Timeout" && target.workerId !== undefined ? suspect(target.workerId) : undefined))),
          Effect.mapError((e) => new WorkerLinkError({ worker: address, reason: e.reason, detail: e.message })),
        )
        target.workerId = client.worker
        cleared(client.worker)
        // before anything is placed on it: the registry row is what session rows refer to
        yield* registry.worker(client.worker, address)
        const watch = attachments.watch(address)
        const why = yield* Effect.acquireUseRelease(
          Effect.sync(() => {
            up.set(address, client)
            for (const wake of [...waiting]) wake()
            return client.onFrame((frame) => {
              if (frame.type === "error" && frame.session === undefined && /^WorkerStopped:/.test(frame.message)) target.stopping = true
              if (watch(frame)) router.dispatch(frame)
            })
          }),
          () =>
            Effect.gen(function*() {
              yield* Effect.logInfo(`connected to ${client.worker} at ${address}${target.tls ? " over TLS" : ""} (${describeClient(client)})`)
              const afterLoss = attachments.connected(address, client)
              router.reconnected(client.worker)
              if (afterLoss !== undefined) run(afterLoss)
              return yield* Effect.raceFirst(
                Effect.map(Effect.promise(() => client.closed), (why) => ({ why, silent: false })),
                Effect.map(Effect.flip(watchdog(client)), (why) => ({ why, silent: true })),
              )
            }),
          (off, exit) =>
            Effect.sync(() => {
              off()
              up.delete(address)
              client.destroy()
              attachments.lost(address)
              router.lost(client.worker, Exit.isSuccess(exit) ? exit.value.why : "the link was stopped")
              if (Exit.isSuccess(exit) && exit.value.silent) suspect(client.worker)
            }),
        )
        // a worker that said it stops: a discovered one's link ends (it registers again when it is back)
        if (target.discovered && target.stopping) {
          targets.delete(address)
          return yield* Effect.logInfo(`${client.worker} at ${address} stopped: its link ends`)
        }
        target.stopping = false
        return yield* new WorkerLinkError({ worker: address, reason: "Lost", detail: `${client.worker}: ${why.why}` })
      })

    const supervisor = yield* makeDynamic(linksSupervisor(options.workerReconnect))
    const childId = (address: string): string => `link:${address}`
    const addTarget = (target: Target): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (targets.has(target.address)) return Effect.void
        targets.set(target.address, target)
        const restart = target.discovered ? "transient" : "permanent"
        return supervisor.startChild(fiberChild({ id: childId(target.address), restart, shutdown: LINK_SHUTDOWN, run: life(target) })).pipe(
          Effect.catch((error) => Effect.andThen(Effect.sync(() => targets.delete(target.address)), Effect.logWarning(`no link to ${target.address}: ${error.message}`))),
          Effect.asVoid,
        )
      })
    const dropTarget = (address: string, why: string): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (!targets.get(address)?.discovered) return Effect.void
        targets.delete(address)
        return Effect.andThen(Effect.logInfo(`the link to ${address} ends: ${why}`), Effect.ignore(supervisor.terminateChild(childId(address))))
      })
    for (const address of options.workers) yield* addTarget({ address, tls: false, discovered: false, workerId: undefined, stopping: false })

    if (options.discover) {
      const byId = (workerId: string): Target | undefined => [...targets.values()].find((t) => t.workerId === workerId)
      const learn = (rows: ReadonlyArray<WorkerRow>): Effect.Effect<void> =>
        Effect.forEach(rows, (w) => addTarget({ address: w.address, tls: w.tls, discovered: true, workerId: w.id, stopping: false }), { discard: true })
      const resync = Effect.flatMap(registry.liveWorkers(), learn)
      yield* registry.watchWorkers(
        (notice) => {
          switch (notice.type) {
            case "up":
              return void run(Effect.flatMap(registry.liveWorkers(), (rows) => learn(rows.filter((w) => w.id === notice.id))))
            case "down": {
              const target = byId(notice.id)
              if (target === undefined) return
              // a link that is up ends when the worker closes it; one waiting to reconnect ends now
              if (!up.has(target.address)) run(dropTarget(target.address, `${notice.id} stopped`))
              else target.stopping = true
              return
            }
            case "lost": {
              cleared(notice.id)
              router.workerLost(notice.id, notice.host)
              const target = byId(notice.id)
              if (target !== undefined) run(dropTarget(target.address, `${notice.id} on ${notice.host} was declared lost`))
              return
            }
          }
        },
        () => void run(resync),
      )
    } else {
      // without discovery a loss is still heard, for the routes of a static worker's sessions
      yield* registry.watchWorkers((notice) => {
        if (notice.type === "lost") router.workerLost(notice.id, notice.host)
      }, () => undefined)
    }

    // the registry's count of every backend's sessions: on LOAD_REFRESH, and soon after any backend opens or ends one
    const wake = yield* Queue.sliding<void>(1)
    const refresh = Effect.gen(function*() {
      const queriedAt = yield* Clock.currentTimeMillis
      book.setShared(yield* registry.load(), queriedAt)
    })
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(refresh, Effect.raceFirst(Effect.andThen(Queue.take(wake), Effect.sleep(LOAD_REFRESH_SOON)), Effect.sleep(LOAD_REFRESH)))))
    yield* registry.subscribe((event) => {
      if (!event.mine && event.type !== "opened") attachments.elsewhere(event.id)
      // an end another backend heard: a route of ours for the session ends too (and tells its connection)
      if (!event.mine && event.type === "ended" && event.frame !== undefined && isStateful(router.get(event.id))) router.dispatch(event.frame)
      Queue.offerUnsafe(wake, undefined)
    })
    if (registry.shared) yield* Effect.forkScoped(Effect.repeat(Effect.suspend(() => attachments.adopt(up)), adoptEvery))

    return WorkerLinks.of({
      client: (workerId) => connected().find((c) => c.worker === workerId),
      connected,
      pick: (kind, except) => book.pick(usable(except), kind),
      pickKeyed: (kind, key, except) => pickByKey(usable(except).filter(runs(kind)), key),
      whenConnected: (kind, ms, except) =>
        new Promise((resolve) => {
          const any = (): boolean => usable(except).some(runs(kind))
          // every link is up, none excepted, and none runs it: nothing to wait for (unless the registry may bring more)
          const hopeless = (): boolean => !options.discover && up.size === targets.size && usable(except).length === up.size
          if (any()) return resolve(true)
          if (hopeless()) return resolve(false)
          const wake = (): void => {
            if (!any() && !hopeless()) return
            waiting.delete(wake)
            run(Fiber.interrupt(timer))
            resolve(any())
          }
          const timer = run(Effect.delay(Effect.sync(() => {
            waiting.delete(wake)
            resolve(false)
          }), Duration.millis(ms)))
          waiting.add(wake)
        }),
      addLoad: book.add,
      load: () => book.report(connected()),
      kernels: () => [...new Set(connected().flatMap((c) => c.kernels))],
      await: supervisor.await,
    })
  }))
}
