// Records of a dynamic supervisor's recently ended children (sessions): why and when each ended, kept for
// `keepEnded` and at most `maxEnded` of them. Expiry is by Clock time, pruned when one is added or read: no timer.
import { Clock, Effect } from "effect"
import type { ExitReason } from "./exit.ts"

export interface EndedChild {
  readonly id: string
  readonly key?: string | undefined
  readonly reason: ExitReason
  /** epoch ms when its last incarnation became ready; absent if it never did */
  readonly startedAt?: number | undefined
  /** epoch ms, from Effect's Clock */
  readonly endedAt: number
}

export interface EndedLog {
  readonly record: (child: Omit<EndedChild, "endedAt">) => Effect.Effect<void>
  /** Oldest first, newest last. */
  readonly all: Effect.Effect<ReadonlyArray<EndedChild>>
  /** The latest record of that id, if it is still kept. */
  readonly find: (id: string) => Effect.Effect<EndedChild | undefined>
}

export const makeEndedLog = (keepMs: number, max: number): EndedLog => {
  // A Map keeps insertion order, and a record is re-inserted when its id ends again: the oldest is always first.
  const byId = new Map<string, EndedChild>()
  const prune = (now: number) => {
    for (const [id, e] of byId) {
      if (byId.size <= max && now - e.endedAt < keepMs) return
      byId.delete(id)
    }
  }
  const pruned = <A>(read: () => A) => Effect.map(Clock.currentTimeMillis, (now) => (prune(now), read()))
  return {
    record: ({ id, key, reason, startedAt }) =>
      Effect.map(Clock.currentTimeMillis, (endedAt) => {
        byId.delete(id)
        byId.set(id, {
          id,
          ...(key !== undefined ? { key } : {}),
          reason,
          ...(startedAt !== undefined ? { startedAt } : {}),
          endedAt,
        })
        prune(endedAt)
      }),
    all: pruned(() => Array.from(byId.values())),
    find: (id) => pruned(() => byId.get(id)),
  }
}
