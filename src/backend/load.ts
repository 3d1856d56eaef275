// Placement: the least loaded connected worker that runs the kernel, by the registry's count of every backend's
// sessions (read every LOAD_REFRESH, and soon after any backend's open or end) plus this backend's changes since,
// and its own stateless runs.
import { createHash } from "node:crypto"
import { Duration } from "effect"
import type { SessionKind } from "../protocol/browser.ts"
import type { WorkerClient } from "../wire/client.ts"

/**
 * between reads of the per-worker session counts from the registry (each also this backend's heartbeat) when no
 * backend is heard opening or ending a session: how stale another backend's placements may be
 */
export const LOAD_REFRESH = Duration.seconds(2)
/** a read after an open or an end is heard of waits this long: at most 5 reads a second, however busy the backends are */
export const LOAD_REFRESH_SOON = Duration.millis(200)

/** how long a placement or an end of this backend may take to show in a registry read that began before it was recorded */
const REGISTRY_LAG_MS = 2_000

export interface WorkerLoad {
  readonly local: number
  readonly runs: number
  readonly shared: number
}

export interface LoadBook {
  /** the registry's count per worker id, from a read that began at `queriedAt` (epoch ms) */
  setShared(load: Map<string, number>, queriedAt: number): void
  /** +1 when this backend places a session or a run on `workerId`, -1 when it ends */
  add(workerId: string, delta: number, kind: "session" | "run"): void
  pick(connected: ReadonlyArray<WorkerClient>, kind: SessionKind): WorkerClient | undefined
  report(connected: ReadonlyArray<WorkerClient>): Record<string, WorkerLoad>
}

/** `now`: epoch ms from Effect's Clock */
export const makeLoadBook = (now: () => number): LoadBook => {
  /** sessions this backend placed and routes, per worker id */
  const localSessions = new Map<string, number>()
  /** this backend's session placements and ends, newest last, until the registry surely shows them */
  let recent: Array<{ readonly worker: string; readonly delta: number; readonly at: number }> = []
  /** stateless runs this backend has running, per worker id (short-lived: never in the registry) */
  const localRuns = new Map<string, number>()
  /** live sessions per worker id as the registry counts them (every backend's) */
  let shared = new Map<string, number>()
  const sinceRefresh = (worker: string): number => recent.reduce((n, d) => (d.worker === worker ? n + d.delta : n), 0)

  return {
    /**
     * A placement's registry row, and a session's end, are written before this backend's own count changes; a read
     * that began just before either was written may miss it: changes younger than REGISTRY_LAG_MS before the read
     * stay counted (at worst a session counts twice for a moment, which steers new sessions away from a busy worker;
     * forgetting it would pile them onto one).
     */
    setShared: (load, queriedAt) => {
      shared = load
      recent = recent.filter((d) => d.at >= queriedAt - REGISTRY_LAG_MS)
    },
    add: (workerId, delta, kind) => {
      const counts = kind === "session" ? localSessions : localRuns
      counts.set(workerId, Math.max(0, (counts.get(workerId) ?? 0) + delta))
      if (kind === "session") recent.push({ worker: workerId, delta, at: now() })
    },
    pick: (connected, kind) => {
      let best: WorkerClient | undefined
      let bestLoad = Infinity
      for (const client of connected) {
        if (kind !== "terminal" && !client.kernels.includes(kind)) continue
        // The registry counts every backend's sessions (ours included) as of its last read; add our changes since.
        const sessions = Math.max(0, (shared.get(client.worker) ?? 0) + sinceRefresh(client.worker))
        const load = sessions + (localRuns.get(client.worker) ?? 0)
        // equal loads: a random pick, so backends whose counts are equally stale do not all pile onto one worker
        if (load < bestLoad || (load === bestLoad && Math.random() < 0.5)) {
          best = client
          bestLoad = load
        }
      }
      return best
    },
    report: (connected) =>
      Object.fromEntries(connected.map((c) => [c.worker, {
        local: localSessions.get(c.worker) ?? 0,
        runs: localRuns.get(c.worker) ?? 0,
        shared: shared.get(c.worker) ?? 0,
      }])),
  }
}

/** Rendezvous hashing: of `candidates`, the one whose hash with `key` is highest; the same for every caller. */
export const pickByKey = (candidates: ReadonlyArray<WorkerClient>, key: string): WorkerClient | undefined => {
  let best: WorkerClient | undefined
  let bestScore = ""
  for (const client of candidates) {
    const score = createHash("sha256").update(`${key}\0${client.worker}`).digest("hex")
    if (best === undefined || score > bestScore) {
      best = client
      bestScore = score
    }
  }
  return best
}
