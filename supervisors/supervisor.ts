// Static supervisors: build one from its declaration in a Scope, and nest one as a child of another.
// The restart policy lives in engine.ts; this file is the public surface (SupervisorHandle, make, supervisorChild).
import { Effect, type PubSub, Result, type Scope } from "effect"
import type { ChildSpec, ChildStatus, Running } from "./child.ts"
import type { SupervisorSpec } from "./declaration.ts"
import { makeEngine } from "./engine.ts"
import type { Escalation, InvalidSpec, SupervisorStopped } from "./errors.ts"
import { UnknownChild } from "./errors.ts"
import type { SupervisorEvent } from "./events.ts"
import { ExitReason } from "./exit.ts"
import { registerNested, validateSupervisor } from "./validate.ts"

export type { BackoffOptions, DynamicSupervisorSpec, Strategy, SupervisorSpec } from "./declaration.ts"
export { SUPERVISOR_DEFAULTS } from "./declaration.ts"
export type { EventKind, SupervisorEvent } from "./events.ts"
export { closeReason } from "./slot.ts"
export * from "./errors.ts"

export interface SupervisorHandle {
  readonly id: string
  /** Every child in list order, with nested supervisors' children inside. */
  readonly children: Effect.Effect<ReadonlyArray<ChildStatus>>
  /**
   * Operator restart: stop the child (it exits Shutdown), then start it again at once, without backoff.
   * Counted in the child's `restarts` but not against intensity: an operator is not a crash loop.
   * A start that then fails is an ordinary exit and does count.
   */
  readonly restartChild: (id: string) => Effect.Effect<void, UnknownChild | SupervisorStopped>
  /**
   * Stops one child and leaves it stopped (a temporary child is removed) until `restartChild`, recording
   * `reason` (default Shutdown): its scope is closed with it, then it is the child's `lastExit` and an exit event.
   */
  readonly terminateChild: (id: string, reason?: ExitReason) => Effect.Effect<void, UnknownChild | SupervisorStopped>
  /** Stops every child in reverse order and waits; then `await` succeeds. Idempotent. */
  readonly stop: Effect.Effect<void>
  /** This supervisor's events and those of every supervisor nested below it. Subscribe in a Scope. */
  readonly events: PubSub.PubSub<SupervisorEvent>
  /** The last EVENT_HISTORY events of this supervisor and those below it. */
  readonly recentEvents: Effect.Effect<ReadonlyArray<SupervisorEvent>>
  /** Resolves when the supervisor has stopped; fails with Escalation when it gave up. */
  readonly await: Effect.Effect<void, Escalation>
}

/**
 * Validates the declaration, starts the children in list order (each once the one before is ready, its `start`
 * resolved) and returns. Closing the Scope stops every child in reverse order and waits for them.
 */
export const make = Effect.fn("Supervisor.make")(function*(spec: SupervisorSpec) {
  const resolved = yield* validateSupervisor(spec)
  const engine = yield* makeEngine(resolved, false)
  /** Not a direct child: ask each running nested supervisor (outside this loop, so it keeps serving exits). */
  const restartNested = (id: string, notFound: UnknownChild) =>
    Effect.gen(function*() {
      const nested = yield* engine.call((ops) =>
        Effect.succeed(ops.slots().flatMap((s) => (s.state === "running" && s.running?.restartChild ? [s.running.restartChild] : [])))
      )
      for (const restart of nested) {
        const result = yield* Effect.result(restart(id))
        if (Result.isSuccess(result)) return
        if (result.failure._tag !== "UnknownChild") return yield* Effect.fail(result.failure as SupervisorStopped)
      }
      return yield* Effect.fail(notFound)
    })
  const handle: SupervisorHandle = {
    id: engine.id,
    children: engine.children,
    restartChild: (id) =>
      Effect.flatten(engine.call((ops) => ops.restart(id))).pipe(
        Effect.catchTag("UnknownChild", (notFound) => restartNested(id, notFound)),
      ),
    terminateChild: (id, reason = ExitReason.Shutdown()) => Effect.flatten(engine.call((ops) => ops.terminate(id, reason))),
    stop: engine.stop,
    events: engine.events.pubsub,
    recentEvents: engine.events.recent,
    await: engine.await,
  }
  return handle
}) as (spec: SupervisorSpec) => Effect.Effect<SupervisorHandle, InvalidSpec, Scope.Scope>

/** How a supervisor ended, as its parent sees it: stopped is Shutdown, an escalation is a Crash with its text. */
export const supervisorExit = (done: Effect.Effect<void, Escalation>): Effect.Effect<ExitReason> =>
  done.pipe(
    Effect.as(ExitReason.Shutdown()),
    Effect.catch((e: Escalation) => Effect.succeed(ExitReason.Crash({ detail: e.message }))),
  )

/**
 * A supervisor as a child of another (type "supervisor", shutdown "infinity" unless given).
 * Its declaration is validated together with the parent's. It is ready once its own children have started;
 * it exits Crash(<escalation>) when it gives up, and the parent then applies its own policy to it.
 */
export const supervisorChild = (
  spec: SupervisorSpec,
  options?: Pick<ChildSpec, "restart" | "shutdown">,
): ChildSpec => {
  const start = Effect.map(
    Effect.mapError(make(spec), (e): ExitReason => ExitReason.Crash({ detail: e.message })),
    (handle): Running => ({ exit: supervisorExit(handle.await), children: handle.children, restartChild: handle.restartChild }),
  )
  const child: ChildSpec = {
    id: spec.id,
    start,
    type: "supervisor",
    ...(options?.restart !== undefined ? { restart: options.restart } : {}),
    ...(options?.shutdown !== undefined ? { shutdown: options.shutdown } : {}),
  }
  registerNested(child, spec)
  return child
}
