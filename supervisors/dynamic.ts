// Dynamic supervisors (Elixir's DynamicSupervisor): start empty, children (sessions) added and removed at run time,
// no ordering, caps (`maxChildren`, `maxChildrenPerKey`), records of recently ended children, concurrent stop.
// Restart types and intensity apply as in a one_for_one supervisor.
import { Effect, type PubSub, type Scope } from "effect"
import type { ChildSpec, ChildStatus } from "./child.ts"
import type { DynamicSupervisorSpec } from "./declaration.ts"
import type { EndedChild } from "./ended.ts"
import { makeEngine } from "./engine.ts"
import {
  ChildStartFailed,
  type Escalation,
  type InvalidSpec,
  MaxChildrenPerKeyReached,
  MaxChildrenReached,
  SupervisorStopped,
  type UnknownChild,
} from "./errors.ts"
import type { SupervisorEvent } from "./events.ts"
import { ExitReason } from "./exit.ts"
import type { StartOutcome } from "./slot.ts"
import { validateChild, validateDynamic, validateStartOptions } from "./validate.ts"

export type { EndedChild } from "./ended.ts"

export interface StartChildOptions {
  /** Groups children for `maxChildrenPerKey` (say, the user a session belongs to); shown in their ChildStatus. */
  readonly key?: string
}

export interface DynamicSupervisorHandle {
  readonly id: string
  /**
   * Validates and starts one child; resolves with its status once it is ready. Starts run concurrently, and a
   * child still starting counts against both caps. A failed start is an exit event and an ended record, but the
   * child is not added (and not restarted): the caller gets ChildStartFailed, as when it is terminated while starting.
   */
  readonly startChild: (
    spec: ChildSpec,
    options?: StartChildOptions,
  ) => Effect.Effect<
    ChildStatus,
    InvalidSpec | MaxChildrenReached | MaxChildrenPerKeyReached | ChildStartFailed | SupervisorStopped
  >
  /**
   * Stops the child (interrupting a start still running, honouring its shutdown) and removes it, recording
   * `reason` (default Shutdown) as its exit: its scope is closed with it, then an exit event and an ended record.
   */
  readonly terminateChild: (id: string, reason?: ExitReason) => Effect.Effect<void, UnknownChild | SupervisorStopped>
  readonly children: Effect.Effect<ReadonlyArray<ChildStatus>>
  /** Live children (running, starting, stopping or waiting for a restart). */
  readonly count: Effect.Effect<number>
  /** Children that ended within `keepEnded` (at most `maxEnded`), newest last. */
  readonly ended: Effect.Effect<ReadonlyArray<EndedChild>>
  readonly endedChild: (id: string) => Effect.Effect<EndedChild | undefined>
  /** Stops every child at once, each honouring its own shutdown, and waits. Idempotent. */
  readonly stop: Effect.Effect<void>
  /** As `stop`, but each child's recorded exit (and its scope's close) is `reason`, e.g. WorkerStopped. */
  readonly stopWith: (reason: ExitReason) => Effect.Effect<void>
  readonly events: PubSub.PubSub<SupervisorEvent>
  readonly recentEvents: Effect.Effect<ReadonlyArray<SupervisorEvent>>
  readonly await: Effect.Effect<void, Escalation>
}

export const makeDynamic = Effect.fn("DynamicSupervisor.make")(function*(spec: DynamicSupervisorSpec) {
  const resolved = yield* validateDynamic(spec)
  const engine = yield* makeEngine(resolved, true)
  const answer = (child: string) => (outcome: StartOutcome): Effect.Effect<ChildStatus, ChildStartFailed | SupervisorStopped> => {
    switch (outcome._tag) {
      case "Ready":
        return Effect.succeed(outcome.status)
      case "Failed":
        return Effect.fail(new ChildStartFailed({ supervisor: engine.id, child, reason: outcome.reason }))
      case "Cancelled":
        return outcome.supervisorStopped
          ? Effect.fail(new SupervisorStopped({ supervisor: engine.id }))
          : Effect.fail(new ChildStartFailed({ supervisor: engine.id, child, reason: outcome.reason }))
    }
  }
  const handle: DynamicSupervisorHandle = {
    id: engine.id,
    startChild: (child, options) =>
      Effect.flatten(engine.call((ops) =>
        Effect.gen(function*() {
          const valid = yield* validateChild(engine.id, child, ops.has)
          const key = yield* validateStartOptions(engine.id, options)
          if (ops.size() >= resolved.maxChildren) {
            return yield* new MaxChildrenReached({
              supervisor: engine.id,
              child: valid.id,
              maxChildren: resolved.maxChildren,
            })
          }
          if (key !== undefined && ops.perKey(key) >= resolved.maxChildrenPerKey) {
            return yield* new MaxChildrenPerKeyReached({
              supervisor: engine.id,
              child: valid.id,
              key,
              maxChildrenPerKey: resolved.maxChildrenPerKey,
            })
          }
          const started = yield* ops.add(valid, key)
          return Effect.flatMap(started, answer(valid.id))
        })
      )),
    terminateChild: (id, reason = ExitReason.Shutdown()) => Effect.flatten(engine.call((ops) => ops.terminate(id, reason))),
    children: engine.children,
    count: engine.size,
    ended: engine.ended.all,
    endedChild: engine.ended.find,
    stop: engine.stop,
    stopWith: engine.stopWith,
    events: engine.events.pubsub,
    recentEvents: engine.events.recent,
    await: engine.await,
  }
  return handle
}) as (spec: DynamicSupervisorSpec) => Effect.Effect<DynamicSupervisorHandle, InvalidSpec, Scope.Scope>
