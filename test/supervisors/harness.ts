// Test children for the supervision engine: fibers whose exits, start failures, start and stop times (on the
// TestClock) the test controls, and a shared log of starts and stops to check ordering.
import { Deferred, Effect, Fiber } from "effect"
import type { ChildSpec, Restart, Running, Shutdown } from "../../supervisors/child.ts"
import type { SupervisorEvent } from "../../supervisors/events.ts"
import type { ExitReason } from "../../supervisors/exit.ts"
import { closeReason } from "../../supervisors/slot.ts"

export interface TestChild {
  readonly spec: ChildSpec
  /** Makes the current incarnation exit with this reason. */
  readonly exit: (reason: ExitReason) => Effect.Effect<void>
  /** The next start(s) fail with this reason. */
  failStarts: (reason: ExitReason, times?: number) => void
  /** From now on each start waits this long (TestClock) before it is ready, logging `starting:<id>` first. */
  slowStarts: (ms: number) => void
  readonly starts: () => number
  /** The closeReason of each time the child's scope was closed, oldest first. */
  readonly closes: () => ReadonlyArray<ExitReason>
}

export interface TestChildOptions {
  restart?: Restart
  shutdown?: Shutdown
  pid?: number
  /** each start waits this long before it is ready */
  startMs?: number
  /** the child's finalizer takes this long */
  stopMs?: number
}

export const makeChild = (log: Array<string>, id: string, options: TestChildOptions = {}): TestChild => {
  let current: Deferred.Deferred<ExitReason> | undefined
  let starts = 0
  let startMs = options.startMs ?? 0
  const closes: Array<ExitReason> = []
  let failing: { reason: ExitReason; times: number } | undefined
  const start: Effect.Effect<Running, ExitReason, import("effect").Scope.Scope> = Effect.gen(function*() {
    starts++
    if (failing !== undefined && failing.times > 0) {
      failing.times--
      log.push(`fail:${id}`)
      return yield* Effect.fail(failing.reason)
    }
    const d = yield* Deferred.make<ExitReason>()
    current = d
    yield* Effect.addFinalizer((exit) =>
      Effect.gen(function*() {
        if (options.stopMs !== undefined) yield* Effect.sleep(options.stopMs)
        closes.push(closeReason(exit))
        log.push(`stop:${id}`)
      })
    )
    if (startMs > 0) {
      log.push(`starting:${id}`)
      yield* Effect.sleep(startMs)
    }
    log.push(`start:${id}`)
    return { pid: options.pid, exit: Deferred.await(d) }
  })
  const spec: ChildSpec = {
    id,
    start,
    ...(options.restart ? { restart: options.restart } : {}),
    ...(options.shutdown !== undefined ? { shutdown: options.shutdown } : {}),
  }
  return {
    spec,
    exit: (reason) => Effect.suspend(() => current ? Deferred.succeed(current, reason) : Effect.void).pipe(Effect.asVoid),
    failStarts: (reason, times = 1) => {
      failing = { reason, times }
    },
    slowStarts: (ms) => {
      startMs = ms
    },
    starts: () => starts,
    closes: () => closes,
  }
}

/** Whether the fiber has ended (without waiting for it). */
export const isDone = (fiber: Fiber.Fiber<unknown, unknown>): boolean => fiber.pollUnsafe() !== undefined

/** Lets the supervisor's fibers run until `pred` holds on its recent events (no real time passes). */
export const waitFor = (
  recent: Effect.Effect<ReadonlyArray<SupervisorEvent>>,
  pred: (events: ReadonlyArray<SupervisorEvent>) => boolean,
  label = "condition",
): Effect.Effect<ReadonlyArray<SupervisorEvent>> =>
  Effect.gen(function*() {
    for (let i = 0; i < 1000; i++) {
      const events = yield* recent
      if (pred(events)) return events
      yield* Effect.yieldNow
    }
    return yield* Effect.die(new Error(`timed out waiting for ${label}: ${JSON.stringify(yield* recent)}`))
  })

/** Lets every ready fiber run a few rounds. */
export const settle = Effect.gen(function*() {
  for (let i = 0; i < 50; i++) yield* Effect.yieldNow
})

export const count = (events: ReadonlyArray<SupervisorEvent>, kind: SupervisorEvent["kind"], child?: string) =>
  events.filter((e) => e.kind === kind && (child === undefined || e.child === child)).length

/** No waiting between restarts: for tests of policy rather than of backoff. */
export const NO_BACKOFF = { initial: 0, max: 0 } as const

/**
 * Runs `effect` and requires it to complete without the TestClock moving (it must not wait behind a slow
 * start, say); dies otherwise instead of hanging the test.
 */
export const promptly = <A, E>(effect: Effect.Effect<A, E>, label = "effect"): Effect.Effect<A, E> =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(effect)
    for (let i = 0; i < 1000 && !isDone(fiber); i++) yield* Effect.yieldNow
    if (!isDone(fiber)) {
      yield* Fiber.interrupt(fiber)
      return yield* Effect.die(new Error(`${label} did not complete without the clock moving`))
    }
    return yield* Fiber.join(fiber)
  })
