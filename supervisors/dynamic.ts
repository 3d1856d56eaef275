// Dynamic supervisors (Elixir's DynamicSupervisor): start empty, children added and removed at run time,
// no ordering, a `maxChildren` limit. Restart types and intensity apply as in a one_for_one supervisor.
import { Effect, type PubSub, type Scope } from "effect"
import type { ChildSpec, ChildStatus } from "./child.ts"
import type { DynamicSupervisorSpec } from "./declaration.ts"
import { makeEngine } from "./engine.ts"
import {
  ChildStartFailed,
  type Escalation,
  type InvalidSpec,
  MaxChildrenReached,
  type SupervisorStopped,
  type UnknownChild,
} from "./errors.ts"
import type { SupervisorEvent } from "./events.ts"
import { statusOf } from "./slot.ts"
import { validateChild, validateDynamic } from "./validate.ts"

export interface DynamicSupervisorHandle {
  readonly id: string
  /**
   * Validates and starts one child; resolves with its status once it is ready. A failed start is an exit
   * event, but the child is not added (and not restarted): the caller gets ChildStartFailed.
   */
  readonly startChild: (
    spec: ChildSpec,
  ) => Effect.Effect<ChildStatus, InvalidSpec | MaxChildrenReached | ChildStartFailed | SupervisorStopped>
  /** Stops the child (honouring its shutdown) and removes it. */
  readonly terminateChild: (id: string) => Effect.Effect<void, UnknownChild | SupervisorStopped>
  readonly children: Effect.Effect<ReadonlyArray<ChildStatus>>
  /** Live children (running, starting or waiting for a restart). */
  readonly count: Effect.Effect<number>
  readonly stop: Effect.Effect<void>
  readonly events: PubSub.PubSub<SupervisorEvent>
  readonly recentEvents: Effect.Effect<ReadonlyArray<SupervisorEvent>>
  readonly await: Effect.Effect<void, Escalation>
}

export const makeDynamic = Effect.fn("DynamicSupervisor.make")(function*(spec: DynamicSupervisorSpec) {
  const resolved = yield* validateDynamic(spec)
  const engine = yield* makeEngine(resolved, true)
  const handle: DynamicSupervisorHandle = {
    id: engine.id,
    startChild: (child) =>
      engine.call((ops) =>
        Effect.gen(function*() {
          const slots = ops.slots()
          const valid = yield* validateChild(engine.id, child, (id) => slots.some((s) => s.spec.id === id))
          if (slots.length >= resolved.maxChildren) {
            return yield* new MaxChildrenReached({
              supervisor: engine.id,
              child: valid.id,
              maxChildren: resolved.maxChildren,
            })
          }
          const failed = yield* ops.add(valid)
          if (failed !== undefined) {
            return yield* new ChildStartFailed({ supervisor: engine.id, child: valid.id, reason: failed })
          }
          const slot = ops.slots().find((s) => s.spec.id === valid.id)
          // Ready children stay in the list at least until the loop handles their exit.
          return slot === undefined ? { id: valid.id, state: "stopped", restarts: 0 } : yield* statusOf(slot)
        })
      ),
    terminateChild: (id) => engine.call((ops) => ops.terminate(id)),
    children: engine.children,
    count: Effect.map(engine.children, (c) => c.length),
    stop: engine.stop,
    events: engine.events.pubsub,
    recentEvents: engine.events.recent,
    await: engine.await,
  }
  return handle
}) as (spec: DynamicSupervisorSpec) => Effect.Effect<DynamicSupervisorHandle, InvalidSpec, Scope.Scope>
