// One effect at a time per key (a workspace, an account) in this process: a semaphore of one permit for each key
// that has an effect running or waiting, forgotten once none has.
import { Effect, Semaphore } from "effect"

export const keyedLock = () => {
  const held = new Map<string, { readonly lock: Semaphore.Semaphore; users: number }>()
  return (key: string) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.suspend(() => {
      const entry = held.get(key) ?? { lock: Semaphore.makeUnsafe(1), users: 0 }
      entry.users++
      held.set(key, entry)
      return entry.lock.withPermit(effect).pipe(Effect.ensuring(Effect.sync(() => {
        if (--entry.users === 0) held.delete(key)
      })))
    })
}
