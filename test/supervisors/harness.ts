// Test children for the supervision engine: fibers whose exits and start failures the test controls,
// and a shared log of starts and stops to check ordering.
import { Deferred, Effect } from "effect"
import type { ChildSpec, Restart, Running, Shutdown } from "../../supervisors/child.ts"
import type { SupervisorEvent } from "../../supervisors/events.ts"
import type { ExitReason } from "../../supervisors/exit.ts"

export interface TestChild {
  readonly spec: ChildSpec
  /** Makes the current incarnation exit with this reason. */
  readonly exit: (reason: ExitReason) => Effect.Effect<void>
  /** The next start(s) fail with this reason. */
  failStarts: (reason: ExitReason, times?: number) => void
  readonly starts: () => number
}

export const makeChild = (
  log: Array<string>,
  id: string,
  options: { restart?: Restart; shutdown?: Shutdown; pid?: number } = {},
): TestChild => {
  let current: Deferred.Deferred<ExitReason> | undefined
  let starts = 0
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
    log.push(`start:${id}`)
    yield* Effect.addFinalizer(() => Effect.sync(() => log.push(`stop:${id}`)))
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
    starts: () => starts,
  }
}

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
