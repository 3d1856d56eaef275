// One supervised child's incarnations: each `start` runs in a fiber of its own (outside the supervisor's loop) in a
// Scope of its own; stopping interrupts a start still running, then closes that Scope with Exit.succeed(reason),
// honouring `shutdown` ("brutal" = do not wait, ms = wait that long plus a grace, "infinity" = wait).
import { Cause, Clock, Deferred, Effect, Exit, Fiber, Option, Result, Scope } from "effect"
import type { ChildState, ChildStatus, Running } from "./child.ts"
import type { ChildSpecResolved, ResolvedBackoff } from "./declaration.ts"
import { makeBackoff, type BackoffTracker } from "./backoff.ts"
import type { EventLog } from "./events.ts"
import { ExitReason } from "./exit.ts"

/**
 * A process actor's own finalizer SIGKILLs its group once `shutdown` ms have passed; the supervisor waits
 * this much longer for the kill to land and the process to be reaped before it gives up waiting (and, say,
 * starts a new incarnation that needs the same port).
 */
export const SHUTDOWN_GRACE_MS = 1_000

/** How a start ended, as whoever waits for it (an ordered pass, a `startChild` caller) hears it. */
export type StartOutcome =
  | { readonly _tag: "Ready"; readonly status: ChildStatus }
  /** its own start failed (its scope is closed, the failure already handled as an exit) */
  | { readonly _tag: "Failed"; readonly reason: ExitReason }
  /** stopped while it was still starting, with this reason */
  | { readonly _tag: "Cancelled"; readonly reason: ExitReason; readonly supervisorStopped: boolean }

/** "add": a dynamic child's first start, whose failure removes it; "policy": a failure is an exit like any other. */
export type StartMode = "add" | "policy"

/** A start in flight. Its fiber reports to the loop, which alone takes it off the slot (or a stop does). */
export interface Starting {
  readonly gen: number
  readonly fiber: Fiber.Fiber<void>
  readonly mode: StartMode
  readonly outcome: Deferred.Deferred<StartOutcome>
}

/** A dynamic child's scope closing in the background; `after` runs in the loop once it has closed. */
export interface Closing {
  readonly fiber: Fiber.Fiber<void>
  /** the exit being recorded: the first reason given wins */
  readonly reason: ExitReason
  readonly startedAt: number | undefined
  /** a start this close cut short: told so once the child's end is recorded */
  readonly cut: Starting | undefined
  readonly done: Deferred.Deferred<void>
  after: Effect.Effect<void>
}

export interface Slot {
  readonly spec: ChildSpecResolved
  /** dynamic children: the key given to startChild (maxChildrenPerKey counts by it) */
  readonly key: string | undefined
  state: ChildState
  scope: Scope.Closeable | undefined
  running: Running | undefined
  starting: Starting | undefined
  closing: Closing | undefined
  /** incarnation number: a report or exit notice from an older incarnation is ignored */
  gen: number
  /** which scheduled restart may start this child (a newer one cancels older timers) */
  token: number
  restarts: number
  lastExit: ExitReason | undefined
  startedAt: number | undefined
  readonly backoff: BackoffTracker
}

export const makeSlot = (spec: ChildSpecResolved, policy: ResolvedBackoff, key?: string): Slot => ({
  spec,
  key,
  state: "stopped",
  scope: undefined,
  running: undefined,
  starting: undefined,
  closing: undefined,
  gen: 0,
  token: 0,
  restarts: 0,
  lastExit: undefined,
  startedAt: undefined,
  backoff: makeBackoff(policy),
})

/** A failed `start` is an exit: its ExitReason, or a Crash for a defect, or Shutdown if it was interrupted. */
export const reasonOf = (cause: Cause.Cause<ExitReason>): ExitReason => {
  const failure = Cause.findErrorOption(cause)
  if (Option.isSome(failure)) return failure.value
  if (Cause.hasInterruptsOnly(cause)) return ExitReason.Shutdown()
  return ExitReason.Crash({ detail: Cause.pretty(cause) })
}

export const isAlive = (slot: Slot): boolean => slot.state === "running" || slot.state === "starting"

const EXIT_TAGS: Record<ExitReason["_tag"], true> = {
  Normal: true,
  Shutdown: true,
  Crash: true,
  Killed: true,
  Timeout: true,
  CpuLimit: true,
  OutOfMemory: true,
  ClosedByUser: true,
  ClosedByOperator: true,
  WorkerStopped: true,
  WorkerLost: true,
}

/**
 * Why the supervisor closed a child's Scope, for the child's finalizers: `Effect.addFinalizer((exit) => ...)`.
 * The engine closes it with Exit.succeed(the reason it records): the child's own exit, a terminateChild or
 * stopWith reason, the failure of its start; Shutdown for anything else (a stop, a sibling's restart).
 */
export const closeReason = (exit: Exit.Exit<unknown, unknown>): ExitReason => {
  if (Exit.isFailure(exit)) return ExitReason.Shutdown()
  const value: unknown = exit.value
  if (typeof value !== "object" || value === null || !("_tag" in value)) return ExitReason.Shutdown()
  const tag = value._tag
  return typeof tag === "string" && Object.hasOwn(EXIT_TAGS, tag) ? (value as ExitReason) : ExitReason.Shutdown()
}

/** Runs `close`, waiting as `shutdown` says; a close that outlasts it goes on in the background. */
const withinShutdown = (spec: ChildSpecResolved, close: Effect.Effect<void>): Effect.Effect<void> =>
  Effect.gen(function*() {
    const shutdown = spec.shutdown
    if (shutdown === "infinity") return yield* close
    const fiber = yield* Effect.forkDetach(close)
    if (shutdown === "brutal") return
    const closed = yield* Effect.timeoutOption(Fiber.await(fiber), shutdown + SHUTDOWN_GRACE_MS)
    if (Option.isNone(closed)) {
      yield* Effect.logWarning(
        `${spec.id} did not stop within shutdown = ${shutdown} ms (+ ${SHUTDOWN_GRACE_MS} ms grace); no longer waiting for it`,
      )
        .pipe(Effect.annotateLogs({ child: spec.id }))
    }
  })

/**
 * Begins one incarnation: a new Scope, state "starting", and a fiber that runs `start` in it. The fiber reports
 * the Running (or the failure, once it has closed the scope itself) through `report`, unless the slot was
 * stopped meanwhile: whoever stopped it interrupts the fiber and closes the scope.
 */
export const launch = (
  slot: Slot,
  mode: StartMode,
  events: EventLog,
  provide: <A, E>(start: Effect.Effect<A, E>) => Effect.Effect<A, E>,
  report: (gen: number, result: Result.Result<Running, ExitReason>) => void,
): Effect.Effect<Starting> =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const gen = ++slot.gen
    slot.scope = scope
    slot.state = "starting"
    slot.startedAt = undefined
    yield* events.emit({ kind: "start", child: slot.spec.id })
    const run = Effect.gen(function*() {
      // A start may wait long for readiness: it stays interruptible so that a stop ends it.
      const exit = yield* Effect.exit(Effect.interruptible(provide(Scope.provide(slot.spec.start, scope))))
      if (slot.gen !== gen) return
      if (Exit.isSuccess(exit)) return report(gen, Result.succeed(exit.value))
      const reason = reasonOf(exit.cause)
      yield* withinShutdown(slot.spec, Scope.close(scope, Exit.succeed(reason)))
      report(gen, Result.fail(reason))
    }).pipe(Effect.uninterruptible, Effect.annotateLogs({ child: slot.spec.id }))
    const outcome = yield* Deferred.make<StartOutcome>()
    const fiber = yield* Effect.forkDetach(run)
    const starting: Starting = { gen, fiber, mode, outcome }
    slot.starting = starting
    return starting
  })

/**
 * The loop took the report of a successful start: the child is running. Its watcher is forked into the child's
 * own scope, so closing it (a stop) silences the watcher before the child goes. `exit` should never fail; if it
 * does anyway, that is the child's crash, not the supervisor's.
 */
export const markRunning = (
  slot: Slot,
  running: Running,
  onExit: (gen: number, reason: ExitReason) => Effect.Effect<void>,
): Effect.Effect<void> =>
  Effect.gen(function*() {
    const gen = slot.gen
    slot.starting = undefined
    slot.running = running
    slot.startedAt = yield* Clock.currentTimeMillis
    slot.state = "running"
    const exited = Effect.catchCause(running.exit, (cause) => Effect.succeed(reasonOf(cause)))
    if (slot.scope !== undefined) yield* Effect.forkIn(Effect.flatMap(exited, (reason) => onExit(gen, reason)), slot.scope)
  })

/** What one incarnation holds, taken off its slot by a stop. */
export interface Incarnation {
  readonly scope: Scope.Closeable
  readonly starting: Starting | undefined
}

/** Takes the current incarnation off the slot (so its reports and exit notices are ignored from now on). */
export const detach = (slot: Slot): Incarnation | undefined => {
  const scope = slot.scope
  const starting = slot.starting
  slot.scope = undefined
  slot.running = undefined
  slot.starting = undefined
  slot.gen++
  return scope === undefined ? undefined : { scope, starting }
}

/** Stops a detached incarnation: interrupts a start still running, then closes its scope with `reason`. */
export const stopIncarnation = (spec: ChildSpecResolved, inc: Incarnation, reason: ExitReason): Effect.Effect<void> =>
  withinShutdown(
    spec,
    Effect.andThen(
      inc.starting === undefined ? Effect.void : Fiber.interrupt(inc.starting.fiber),
      Scope.close(inc.scope, Exit.succeed(reason)),
    ),
  )

export const statusOf = (slot: Slot): Effect.Effect<ChildStatus> =>
  Effect.gen(function*() {
    const running = slot.running
    const children = running?.children !== undefined && slot.state === "running" ? yield* running.children : undefined
    return {
      id: slot.spec.id,
      ...(slot.key !== undefined ? { key: slot.key } : {}),
      state: slot.state,
      pid: running?.pid,
      port: running?.port,
      startedAt: slot.startedAt,
      restarts: slot.restarts,
      lastExit: slot.lastExit,
      children,
    }
  })
