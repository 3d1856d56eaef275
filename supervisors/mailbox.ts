// A supervisor's mailbox and the loop that serves it: one message at a time, each uninterruptibly, so that the
// loop alone changes the supervisor's state. `inLoop` runs an effect there, between messages, for its result.
import { Deferred, Effect, type Fiber, Queue, type Scope } from "effect"
import { SupervisorStopped } from "./errors.ts"

type Envelope<M> =
  | { readonly _tag: "Message"; readonly message: M }
  | { readonly _tag: "Call"; readonly run: Effect.Effect<void>; readonly abort: Effect.Effect<void> }

export interface Mailbox<M> {
  /** Queues a message for the loop; dropped once the loop has ended. */
  readonly post: (message: M) => void
  /** Runs `op` inside the loop; fails with SupervisorStopped once the loop has ended. */
  readonly inLoop: <A, E>(op: Effect.Effect<A, E>) => Effect.Effect<A, E | SupervisorStopped>
  /**
   * Forks the loop into the current Scope. It serves messages with `handle` until `done()` holds after one;
   * calls still queued then, or arriving later, fail with SupervisorStopped.
   */
  readonly serve: (handle: (message: M) => Effect.Effect<void>, done: () => boolean) => Effect.Effect<Fiber.Fiber<void>, never, Scope.Scope>
}

export const makeMailbox = <M>(supervisor: string): Effect.Effect<Mailbox<M>> =>
  Effect.gen(function*() {
    const queue = yield* Queue.unbounded<Envelope<M>>()
    const notRunning = new SupervisorStopped({ supervisor })
    let closed = false
    const serve = (handle: (message: M) => Effect.Effect<void>, done: () => boolean) =>
      Effect.gen(function*() {
        while (!done()) {
          const envelope = yield* Queue.take(queue)
          yield* Effect.uninterruptible(envelope._tag === "Call" ? envelope.run : handle(envelope.message))
        }
      }).pipe(
        Effect.ensuring(Effect.gen(function*() {
          closed = true
          const pending = yield* Queue.clear(queue)
          yield* Queue.shutdown(queue)
          for (const e of pending) if (e._tag === "Call") yield* e.abort
        })),
        Effect.annotateLogs({ supervisor }),
        Effect.forkScoped,
      )
    const inLoop = <A, E>(op: Effect.Effect<A, E>): Effect.Effect<A, E | SupervisorStopped> =>
      Effect.gen(function*() {
        if (closed) return yield* notRunning
        const reply = yield* Deferred.make<A, E | SupervisorStopped>()
        const run = Effect.exit(op).pipe(
          Effect.flatMap((exit) => Deferred.done(reply, exit)),
          Effect.onInterrupt(() => Deferred.fail(reply, notRunning)),
          Effect.asVoid,
        )
        const abort = Effect.asVoid(Deferred.fail(reply, notRunning))
        if (!Queue.offerUnsafe(queue, { _tag: "Call", run, abort })) return yield* notRunning
        return yield* Deferred.await(reply)
      })
    return {
      post: (message) => {
        Queue.offerUnsafe(queue, { _tag: "Message", message })
      },
      inLoop,
      serve,
    }
  })
