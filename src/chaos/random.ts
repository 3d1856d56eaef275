// A seeded random source (mulberry32), so `--seed N` repeats a run's choices: faults, targets, kernels, sizes.

export interface Random {
  /** in [0, 1) */
  next(): number
  /** an integer in [lo, hi] */
  int(lo: number, hi: number): number
  pick<T>(xs: ReadonlyArray<T>): T
  /** true with probability p */
  chance(p: number): boolean
}

export const seeded = (seed: number): Random => {
  let a = seed >>> 0
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1))
  return {
    next,
    int,
    pick: <T>(xs: ReadonlyArray<T>): T => {
      if (xs.length === 0) throw new Error("pick from an empty list")
      return xs[int(0, xs.length - 1)]!
    },
    chance: (p) => next() < p,
  }
}

/** Independent streams from one seed: the faults' choices do not shift when the load makes more or fewer. */
export const stream = (seed: number, name: string): Random => {
  let h = seed >>> 0
  for (const c of name) h = Math.imul(h ^ c.charCodeAt(0), 2654435761) >>> 0
  return seeded(h)
}
