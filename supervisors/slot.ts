// One supervised child's incarnations: start it in its own Scope, watch its exit, and close that Scope
// honouring `shutdown` ("brutal" = interrupt without waiting, ms = wait that long plus a grace, "infinity" = wait).
import { Cause, Clock, Effect, Exit, Fiber, Option, Scope } from "effect"
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

export interface Slot {
  readonly spec: ChildSpecResolved
  state: ChildState
  scope: Scope.Closeable | undefined
  running: Running | undefined
  /** incarnation number: an exit notice from an older incarnation is ignored */
  gen: number
  /** which scheduled restart may start this child (a newer one cancels older timers) */
  token: number
  restarts: number
  lastExit: ExitReason | undefined
  startedAt: number | undefined
  readonly backoff: BackoffTracker
}

export const makeSlot = (spec: ChildSpecResolved, policy: ResolvedBackoff): Slot => ({
  spec,
  state: "stopped",
  scope: undefined,
  running: undefined,
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
  return ExitReason.Crash({ cause: Cause.pretty(cause) })
}

export const isAlive = (slot: Slot): boolean => slot.state === "running" || slot.state === "starting"

/**
 * Starts one incarnation. Resolves to undefined once the child is ready, or to the reason its start failed
 * (its scope is then already closed). `onExit` hears the child's own exit, tagged with the incarnation.
 */
export const startSlot = (
  slot: Slot,
  events: EventLog,
  provide: <A, E>(start: Effect.Effect<A, E>) => Effect.Effect<A, E>,
  onExit: (gen: number, reason: ExitReason) => Effect.Effect<void>,
): Effect.Effect<ExitReason | undefined> =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const gen = ++slot.gen
    slot.scope = scope
    slot.state = "starting"
    yield* events.emit({ kind: "start", child: slot.spec.id })
    // A start may wait long for readiness: it stays interruptible so that stopping the supervisor ends it.
    const exit = yield* Effect.exit(Effect.interruptible(provide(Scope.provide(slot.spec.start, scope))))
    if (Exit.isFailure(exit)) {
      yield* closeSlot(slot)
      return reasonOf(exit.cause)
    }
    const running = exit.value
    slot.running = running
    slot.startedAt = yield* Clock.currentTimeMillis
    slot.state = "running"
    yield* events.emit({ kind: "ready", child: slot.spec.id, pid: running.pid })
    // Forked into the child's own scope: closing it (a stop) silences the watcher before the child goes.
    // `exit` should never fail; if it does anyway, that is the child's crash, not the supervisor's.
    const exited = Effect.catchCause(running.exit, (cause) => Effect.succeed(reasonOf(cause)))
    yield* Effect.forkIn(Effect.flatMap(exited, (reason) => onExit(gen, reason)), scope)
    return undefined
  }).pipe(Effect.annotateLogs({ child: slot.spec.id }))

/** Closes the current incarnation's scope (stopping the child) and forgets it. */
export const closeSlot = (slot: Slot): Effect.Effect<void> =>
  Effect.gen(function*() {
    const scope = slot.scope
    slot.scope = undefined
    slot.running = undefined
    slot.startedAt = undefined
    slot.gen++
    if (scope === undefined) return
    const shutdown = slot.spec.shutdown
    const close = Scope.close(scope, Exit.void)
    if (shutdown === "infinity") return yield* close
    const fiber = yield* Effect.forkDetach(close)
    if (shutdown === "brutal") return
    const closed = yield* Effect.timeoutOption(Fiber.await(fiber), shutdown + SHUTDOWN_GRACE_MS)
    if (Option.isNone(closed)) {
      yield* Effect.logWarning(
        `${slot.spec.id} did not stop within shutdown = ${shutdown} ms (+ ${SHUTDOWN_GRACE_MS} ms grace); no longer waiting for it`,
      )
        .pipe(Effect.annotateLogs({ child: slot.spec.id }))
    }
  })

export const statusOf = (slot: Slot): Effect.Effect<ChildStatus> =>
  Effect.gen(function*() {
    const running = slot.running
    const children = running?.children !== undefined && slot.state === "running" ? yield* running.children : undefined
    return {
      id: slot.spec.id,
      state: slot.state,
      pid: running?.pid,
      port: running?.port,
      startedAt: slot.startedAt,
      restarts: slot.restarts,
      lastExit: slot.lastExit,
      children,
    }
  })
