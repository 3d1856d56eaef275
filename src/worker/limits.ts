// A session's limits as Effects on Clock: its exit is the first of wall, idle (a computing kernel is never idle),
// exec, and what its own cgroup says (an OOM kill, CPU seconds used). Read by the session child (session-child.ts).
import { Clock, Effect, Queue, Schedule } from "effect"
import { ExitReason } from "../../supervisors/exit.ts"
import type { ResolvedLimits } from "./config.ts"

/**
 * How often a session's cgroup is read for an OOM kill and the CPU seconds its processes have used: with 200 live
 * sessions, 400 reads of cgroupfs a second on the worker's event loop (every 250 ms was four times that).
 */
export const cgroupCheck = Schedule.spaced("1 second")

/**
 * What the time limits watch: when the session last did something, and since when it has been computing.
 * Written from I/O callbacks, so it reads the Clock it was made with (TestClock in tests) without an Effect.
 */
export class Activity {
  lastActivity: number
  /** epoch ms the running execution started; undefined when the kernel is not computing */
  busySince: number | undefined
  /** one pending wake-up for the watcher when busy/idle flips (its deadlines change) */
  readonly changed: Queue.Queue<void>
  private readonly clock: Clock.Clock

  private constructor(clock: Clock.Clock, changed: Queue.Queue<void>) {
    this.clock = clock
    this.changed = changed
    this.lastActivity = clock.currentTimeMillisUnsafe()
  }

  static make: Effect.Effect<Activity> = Effect.gen(function*() {
    return new Activity(yield* Clock.Clock, yield* Queue.sliding<void>(1))
  })

  now(): number {
    return this.clock.currentTimeMillisUnsafe()
  }

  /** a request or an output message */
  touch(): void {
    this.lastActivity = this.now()
  }

  /** an execution started */
  busy(): void {
    this.busySince = this.now()
    this.lastActivity = this.busySince
    Queue.offerUnsafe(this.changed, undefined)
  }

  /** the execution is done (or the kernel is gone) */
  idle(): void {
    if (this.busySince === undefined) return
    this.busySince = undefined
    this.lastActivity = this.now()
    Queue.offerUnsafe(this.changed, undefined)
  }
}

/** Completes with `Timeout(wall | idle | exec)` when the first of the session's time limits is reached. */
export const timeLimits = (activity: Activity, limits: ResolvedLimits, startedAt: number): Effect.Effect<ExitReason> =>
  Effect.gen(function*() {
    const wall = startedAt + limits.wall * 1000
    while (true) {
      const now = yield* Clock.currentTimeMillis
      if (now >= wall) return ExitReason.Timeout({ limit: "wall" })
      const busySince = activity.busySince
      const [limit, deadline] = busySince !== undefined
        ? ["exec", busySince + limits.exec * 1000] as const
        : ["idle", activity.lastActivity + limits.idle * 1000] as const
      if (now >= deadline) return ExitReason.Timeout({ limit })
      // Woken at the nearer deadline (then checked again: activity may have moved it) or when busy/idle flips.
      yield* Effect.raceFirst(Effect.sleep(Math.min(wall, deadline) - now), Queue.take(activity.changed))
    }
  })

/** What a session's cgroup reports: OOM kills so far and CPU seconds used by all its processes (if accounted). */
export interface CgroupUsage {
  readonly oomKills: () => number
  readonly cpuSeconds: () => number | undefined
}

/**
 * Completes with `OutOfMemory` once the OOM killer has struck anywhere in the session, or `CpuLimit` once its
 * processes together used more CPU seconds than its limit (counted from `cpuAtStart`, the pooled kernel's own).
 */
export const cgroupLimits = (usage: CgroupUsage, limits: ResolvedLimits): Effect.Effect<ExitReason> => {
  const cpuAtStart = usage.cpuSeconds() ?? 0
  const check = Effect.sync((): ExitReason | undefined => {
    if (usage.oomKills() > 0) return ExitReason.OutOfMemory()
    const cpu = usage.cpuSeconds()
    return cpu !== undefined && cpu - cpuAtStart > limits.cpu ? ExitReason.CpuLimit() : undefined
  })
  // cgroupCheck never ends, so the repeat stops only on a reason
  return Effect.repeat(check, { schedule: cgroupCheck, until: (reason) => reason !== undefined }).pipe(
    Effect.flatMap((reason) => (reason === undefined ? Effect.never : Effect.succeed(reason))),
  )
}
