// The registry's backlog: the writes PostgreSQL could not take while it was away (a session recorded from this
// backend's memory, an end, an attach), made again in their order once it answers, so that the registry catches up
// with what happened meanwhile: a session that ended while PostgreSQL was down does not count as live for ever.
import { Effect, Schedule } from "effect"

/** how often a backlog is tried again while PostgreSQL is away */
const catchUpEvery = Schedule.spaced("1 second")
/** writes kept at most; past it the oldest is dropped (said once per drop streak) */
export const BACKLOG_MAX = 10_000

export interface Backlog<W> {
  /**
   * Makes `write` now, or, while PostgreSQL is away or older writes still wait, keeps it for later (in order: an end
   * is never made before the record of its session).
   */
  write(write: W): Effect.Effect<void>
  size(): number
}

/**
 * `apply` makes one write; it fails with `unavailable: true` when PostgreSQL is still away (the write is kept and
 * tried again, with those after it, a second later), and with `unavailable: false` when the write itself is wrong
 * (it is dropped, with a warning). The drain runs in the caller's scope.
 */
export const makeBacklog = <W>(
  apply: (write: W) => Effect.Effect<void, { readonly unavailable: boolean; readonly message: string }>,
  describe: (write: W) => string,
) =>
  Effect.gen(function*() {
    const context = yield* Effect.context<never>()
    const pending: Array<W> = []
    let dropping = false
    const drain = Effect.gen(function*() {
      while (pending.length > 0) {
        const result = yield* Effect.result(apply(pending[0]!))
        if (result._tag === "Failure") {
          if (result.failure.unavailable) return
          yield* Effect.logWarning(`registry: dropped ${describe(pending[0]!)}: ${result.failure.message}`)
        }
        pending.shift()
      }
    })
    yield* Effect.forkScoped(Effect.repeat(
      Effect.gen(function*() {
        const before = pending.length
        if (before === 0) return
        yield* drain
        if (pending.length === 0) yield* Effect.logInfo(`registry: caught up with ${before} write(s) made while PostgreSQL was away`)
      }),
      catchUpEvery,
    ))
    const keep = (write: W): void => {
      pending.push(write)
      if (pending.length <= BACKLOG_MAX) {
        dropping = false
        return
      }
      const dropped = pending.shift()!
      if (!dropping) Effect.runForkWith(context)(Effect.logWarning(`registry: more than ${BACKLOG_MAX} writes wait for PostgreSQL; dropping the oldest (${describe(dropped)})`))
      dropping = true
    }
    return {
      write: (write) =>
        pending.length > 0
          ? Effect.sync(() => keep(write))
          : Effect.catch(apply(write), (failure) =>
            failure.unavailable ? Effect.sync(() => keep(write)) : Effect.logWarning(`registry: ${describe(write)}: ${failure.message}`)),
      size: () => pending.length,
    } satisfies Backlog<W>
  })
