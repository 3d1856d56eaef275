// The children a supervisor holds: slots by id (a Map, so in declared or start order, and O(1) to find or remove),
// how many under each key, and for a dynamic supervisor the record each removed child leaves (ended.ts).
import { Effect } from "effect"
import type { EndedLog } from "./ended.ts"
import type { ExitReason } from "./exit.ts"
import type { Slot } from "./slot.ts"

export interface Roster {
  readonly get: (id: string) => Slot | undefined
  readonly has: (id: string) => boolean
  readonly size: () => number
  readonly all: () => Array<Slot>
  /** Whether this slot (not an older one of the same id) is still held. */
  readonly owns: (slot: Slot) => boolean
  readonly perKey: (key: string) => number
  readonly add: (slot: Slot) => void
  /** Lets the child go; with an ended log, it leaves a record of why and when. */
  readonly remove: (slot: Slot, reason: ExitReason, startedAt: number | undefined) => Effect.Effect<void>
}

export const makeRoster = (initial: ReadonlyArray<Slot>, ended: EndedLog | undefined): Roster => {
  const slots = new Map<string, Slot>()
  const keys = new Map<string, number>()
  const add = (slot: Slot) => {
    slots.set(slot.spec.id, slot)
    if (slot.key !== undefined) keys.set(slot.key, (keys.get(slot.key) ?? 0) + 1)
  }
  for (const slot of initial) add(slot)
  const owns = (slot: Slot) => slots.get(slot.spec.id) === slot
  return {
    get: (id) => slots.get(id),
    has: (id) => slots.has(id),
    size: () => slots.size,
    all: () => Array.from(slots.values()),
    owns,
    perKey: (key) => keys.get(key) ?? 0,
    add,
    remove: (slot, reason, startedAt) =>
      Effect.suspend(() => {
        if (!owns(slot)) return Effect.void
        slots.delete(slot.spec.id)
        if (slot.key !== undefined) {
          const n = (keys.get(slot.key) ?? 1) - 1
          if (n > 0) keys.set(slot.key, n)
          else keys.delete(slot.key)
        }
        return ended === undefined ? Effect.void : ended.record({ id: slot.spec.id, key: slot.key, reason, startedAt })
      }),
  }
}
