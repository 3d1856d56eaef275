// The WorkerLinks service: one supervised link per configured worker address, children of the links supervisor
// (supervisors/), restarted with its backoff. A link's life: connect and authenticate, register the worker, route
// its frames, and exit when the connection closes. Placement (load.ts) picks among the links that are up.
// The links also keep the registry true for the sessions whose output comes to them (attachments.ts).
import { Clock, Context, Data, Duration, Effect, Exit, Fiber, FiberSet, Layer, Queue } from "effect"
import type { KernelKind, SessionKind } from "../protocol/browser.ts"
import type { ChildSpec } from "../../supervisors/child.ts"
import type { SupervisorSpec } from "../../supervisors/declaration.ts"
import { fiberChild } from "../../supervisors/fiber.ts"
import { type Escalation, make } from "../../supervisors/supervisor.ts"
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

/**
 * The links supervisor, with the backoff of --workerReconnect. A worker may be down for hours; that must never make
 * the supervisor give up. Every restart delay is at least `initial` (the backoff starts there and only grows until
 * a reset), so one link restarts at most LINK_PERIOD / initial + 1 times in a window: the intensity allows that
 * for every link at once.
 */
const linksSupervisor = (reconnect: BackendOptions["workerReconnect"], children: ReadonlyArray<ChildSpec>): SupervisorSpec => ({
  id: "links",
  strategy: "one_for_one",
  intensity: children.length * (Math.ceil((LINK_PERIOD * 1000) / reconnect.initial) + 1),
  period: LINK_PERIOD,
  backoff: { initial: reconnect.initial, factor: 2, max: reconnect.max, resetAfter: LINK_RESET_AFTER },
  children,
})

const describeClient = (client: WorkerClient): string => `isolation ${client.isolation}, kernels ${client.kernels.join(",")}`

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
    /** the links that are up, by address */
    const up = new Map<string, WorkerClient>()
    const connected = (): Array<WorkerClient> => options.workers.flatMap((address) => up.get(address) ?? [])
    /** called when a link comes up */
    const waiting = new Set<() => void>()
    const runs = (kind: KernelKind) => (c: WorkerClient): boolean => c.kernels.includes(kind)
    const usable = (except: ReadonlySet<WorkerClient> | undefined): Array<WorkerClient> => (except === undefined ? connected() : connected().filter((c) => !except.has(c)))

    /** One link's life; it ends (and its supervisor starts it again after the backoff) when the connection does. */
    const life = (address: string) =>
      Effect.gen(function*() {
        const colon = address.lastIndexOf(":")
        const client = yield* connectWorker({
          host: address.slice(0, colon),
          port: Number(address.slice(colon + 1)),
          secret,
          timeout: options.workerConnectTimeout,
        }).pipe(Effect.mapError((e) => new WorkerLinkError({ worker: address, reason: e.reason, detail: e.message })))
        // before anything is placed on it: the registry row is what session rows refer to
        yield* registry.worker(client.worker, address)
        const watch = attachments.watch(address)
        const why = yield* Effect.acquireUseRelease(
          Effect.sync(() => {
            up.set(address, client)
            for (const wake of [...waiting]) wake()
            return client.onFrame((frame) => {
              if (watch(frame)) router.dispatch(frame)
            })
          }),
          () =>
            Effect.gen(function*() {
              yield* Effect.logInfo(`connected to ${client.worker} at ${address} (${describeClient(client)})`)
              const afterLoss = attachments.connected(address, client)
              router.reconnected(client.worker)
              if (afterLoss !== undefined) run(afterLoss)
              return yield* Effect.promise(() => client.closed)
            }),
          (off, exit) =>
            Effect.sync(() => {
              off()
              up.delete(address)
              attachments.lost(address)
              router.lost(client.worker, Exit.isSuccess(exit) ? exit.value : "the link was stopped")
            }),
        )
        return yield* new WorkerLinkError({ worker: address, reason: "Lost", detail: `${client.worker}: ${why}` })
      })

    const children = options.workers.map((address) => fiberChild({ id: `link:${address}`, shutdown: LINK_SHUTDOWN, run: life(address) }))
    const supervisor = yield* make(linksSupervisor(options.workerReconnect, children))

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
          // every link is up, none excepted, and none runs it: nothing to wait for
          const hopeless = (): boolean => up.size === options.workers.length && usable(except).length === up.size
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
