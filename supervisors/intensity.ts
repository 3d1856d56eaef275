// Restart intensity: a sliding window of restart times (from Effect's Clock) that says when a supervisor must give up.
// At most `intensity` restarts may fall within any `period`; the one past that escalates.
import { Clock, Effect } from "effect"

export interface RestartWindow {
  /** Records a restart now; `exceeded` when the window then holds more than `intensity` restarts. */
  readonly record: Effect.Effect<{ readonly exceeded: boolean; readonly restarts: number }>
  /** Restart times still inside the window (epoch ms), oldest first. */
  readonly recent: Effect.Effect<ReadonlyArray<number>>
}

/** Pure step of the window: keeps the times within `periodMs` of `now`, then adds `now`. */
export const slide = (times: ReadonlyArray<number>, now: number, periodMs: number): Array<number> => [
  ...times.filter((t) => now - t < periodMs),
  now,
]

export const makeRestartWindow = (intensity: number, periodMs: number): RestartWindow => {
  let times: Array<number> = []
  return {
    record: Effect.map(Clock.currentTimeMillis, (now) => {
      times = slide(times, now, periodMs)
      return { exceeded: times.length > intensity, restarts: times.length }
    }),
    recent: Effect.map(Clock.currentTimeMillis, (now) => times.filter((t) => now - t < periodMs)),
  }
}
