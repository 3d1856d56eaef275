// Watches the tree's status twice a second for the whole run: the latest rows, every change of a component's
// pid (a restart the harness caused or one it did not), and waits for a component to come back.
import type { Tree } from "./tree.ts"
import type { ComponentSample } from "./types.ts"

const POLL_MS = 500

export interface ComponentHistory {
  readonly id: string
  readonly firstPid: number | null
  /** ms since the run's start at which status first showed each new pid */
  readonly pidChanges: number[]
  /** restarts counted by status, summed over increments (a supervisor that restarts resets its children's counts) */
  restarts: number
  lastRestarts: number
  lastExit: string | null
}

export interface Monitor {
  latest(): ReadonlyArray<ComponentSample>
  row(id: string): ComponentSample | undefined
  history(): ReadonlyArray<ComponentHistory>
  /** polls once now (the faults want a fresh pid) */
  refresh(): Promise<ReadonlyArray<ComponentSample>>
  /** resolves with the ms (since start) at which `id` was running as a process other than `oldPids`, or null at the timeout */
  healed(id: string, oldPids: ReadonlyArray<number>, timeoutMs: number): Promise<number | null>
  /** the components that are not running, after waiting up to `timeoutMs` for all to be */
  waitAllRunning(timeoutMs: number): Promise<ReadonlyArray<ComponentSample>>
  /** status calls that failed (the control socket did not answer) */
  readonly failures: { count: number; last: string }
  stop(): void
}

export const startMonitor = async (tree: Tree, now: () => number): Promise<Monitor> => {
  let rows: ReadonlyArray<ComponentSample> = await tree.status()
  const histories = new Map<string, ComponentHistory>()
  const failures = { count: 0, last: "" }
  const observe = (sample: ReadonlyArray<ComponentSample>): void => {
    rows = sample
    for (const r of sample) {
      const h = histories.get(r.id)
      if (h === undefined) {
        histories.set(r.id, { id: r.id, firstPid: r.pid, pidChanges: [], restarts: 0, lastRestarts: r.restarts, lastExit: r.lastExit })
        continue
      }
      const lastPid = h.pidChanges.length > 0 ? pids.get(r.id) : h.firstPid
      if (r.pid !== null && r.pid !== lastPid) {
        h.pidChanges.push(now())
        pids.set(r.id, r.pid)
      }
      if (r.restarts > h.lastRestarts) h.restarts += r.restarts - h.lastRestarts
      h.lastRestarts = r.restarts
      h.lastExit = r.lastExit
    }
  }
  const pids = new Map<string, number>()
  observe(rows)
  const refresh = async (): Promise<ReadonlyArray<ComponentSample>> => {
    try {
      observe(await tree.status())
    } catch (e) {
      failures.count++
      failures.last = (e as Error).message
    }
    return rows
  }
  let stopped = false
  const loop = async () => {
    while (!stopped) {
      await refresh()
      await new Promise((ok) => setTimeout(ok, POLL_MS))
    }
  }
  void loop()
  const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms))
  return {
    latest: () => rows,
    row: (id) => rows.find((r) => r.id === id),
    history: () => [...histories.values()],
    refresh,
    failures,
    healed: async (id, oldPids, timeoutMs) => {
      const deadline = Date.now() + timeoutMs
      while (Date.now() < deadline) {
        const r = (await refresh()).find((x) => x.id === id)
        if (r && r.state === "running" && r.pid !== null && !oldPids.includes(r.pid)) return now()
        await sleep(100)
      }
      return null
    },
    waitAllRunning: async (timeoutMs) => {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const down = (await refresh()).filter((r) => r.state !== "running")
        if (down.length === 0 || Date.now() > deadline) return down
        await sleep(250)
      }
    },
    stop: () => {
      stopped = true
    },
  }
}
