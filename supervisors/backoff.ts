// Backoff between restarts of one child: a named capped exponential Schedule, restarted from the
// beginning once the child has stayed up for `resetAfter` (a bare exponential never resets: see EFFECT4.md).
import { Duration, Effect, Schedule } from "effect"
import type { ResolvedBackoff } from "./declaration.ts"

/** initial, initial*factor, initial*factor², ... never more than max. */
export const restartBackoff = (policy: ResolvedBackoff): Schedule.Schedule<Duration.Duration> =>
  Schedule.min([
    Schedule.exponential(Duration.millis(policy.initialMs), policy.factor),
    Schedule.spaced(Duration.millis(policy.maxMs)),
  ])

export interface BackoffTracker {
  /**
   * The delay before the next restart. `uptimeMs` is how long the child's last incarnation was up
   * (0 if it never became ready); at least `resetAfter` of it starts the schedule over.
   */
  readonly next: (uptimeMs: number) => Effect.Effect<{ readonly attempt: number; readonly delayMs: number }>
}

export const makeBackoff = (policy: ResolvedBackoff): BackoffTracker => {
  let attempt = 0
  let step: ((now: number, input: unknown) => Effect.Effect<[Duration.Duration, Duration.Duration], unknown>) | undefined
  return {
    next: (uptimeMs) =>
      Effect.gen(function*() {
        if (uptimeMs >= policy.resetAfterMs) step = undefined
        if (step === undefined) {
          step = yield* Schedule.toStep(restartBackoff(policy))
          attempt = 0
        }
        attempt += 1
        // The schedule never ends and never fails; fall back to the cap all the same.
        const delay = yield* step(0, undefined).pipe(
          Effect.map(([, d]) => d),
          Effect.orElseSucceed(() => Duration.millis(policy.maxMs)),
        )
        return { attempt, delayMs: Duration.toMillis(delay) }
      }),
  }
}
