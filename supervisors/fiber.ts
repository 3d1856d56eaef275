// Fiber children: a long-running Effect (the control socket, a heartbeat) supervised like a process.
// It is ready once forked; returning is Normal, failing is Crash, and closing its scope interrupts it.
import { Cause, Effect, Exit, Fiber, Option, type Scope } from "effect"
import type { ChildSpec } from "./child.ts"
import { ExitReason } from "./exit.ts"

export interface FiberChildOptions extends Omit<ChildSpec, "start"> {
  /** The child's life. It may use the child's Scope for its resources; they are released when it stops. */
  readonly run: Effect.Effect<unknown, unknown, Scope.Scope>
  /** Runs before `run` is forked; the child counts as started when it resolves (e.g. a socket is listening). */
  readonly ready?: Effect.Effect<{ readonly port?: number | undefined } | void, ExitReason, Scope.Scope>
}

const exitReason = (exit: Exit.Exit<unknown, unknown>): ExitReason => {
  if (Exit.isSuccess(exit)) return ExitReason.Normal()
  if (Cause.hasInterruptsOnly(exit.cause)) return ExitReason.Shutdown()
  const failure = Cause.findErrorOption(exit.cause)
  const error = Option.isSome(failure) ? failure.value : Cause.squash(exit.cause)
  const cause = typeof error === "string" ? error : error instanceof Error ? error.message : Cause.pretty(exit.cause)
  return ExitReason.Crash({ detail: cause })
}

export const fiberChild = ({ run, ready, ...spec }: FiberChildOptions): ChildSpec => ({
  ...spec,
  start: Effect.gen(function*() {
    const info = ready === undefined ? undefined : yield* ready
    const scope = yield* Effect.scope
    const fiber = yield* Effect.forkIn(run, scope)
    return { port: info?.port, exit: Effect.map(Fiber.await(fiber), exitReason) }
  }),
})
