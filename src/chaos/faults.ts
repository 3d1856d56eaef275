// The faults: each does its harm to the tree and says what it did; the caller waits for the tree to heal.
// sigkill, sigstop (held past the liveness bound, so the supervisor must kill and restart), `sagews restart`,
// pg-down (PostgreSQL's postmaster SIGKILLed again each time it comes back, for a period), memcached-hang
// (SIGSTOP), disk-full (the data dir's tmpfs filled with a file, then emptied).
import { closeSync, openSync, unlinkSync, writeSync } from "node:fs"
import { join } from "node:path"
import { processGone, readStat } from "../../actors/procstat.ts"
import type { Monitor } from "./monitor.ts"
import type { Tree } from "./tree.ts"
import type { FaultKind, FaultRecord } from "./types.ts"

/** How long past the liveness bound a stopped process is held before the harness lets it go itself. */
const STOP_MARGIN_MS = 3_000
/** The longest PostgreSQL is kept down or the disk kept full. */
const MAX_OUTAGE_MS = 8_000
/** How long a component gets to come back after a fault before the fault counts as not healed. */
export const HEAL_TIMEOUT_MS = 90_000
/** How long a fault waits for its target to be running before it is skipped. */
const TARGET_WAIT_MS = 15_000
const FILL_CHUNK = Buffer.alloc(4 * 1024 * 1024, 0x5a)

export interface FaultContext {
  readonly tree: Tree
  readonly monitor: Monitor
  readonly now: () => number
  readonly everyMs: number
  readonly log: (line: string) => void
}

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms))

const signal = (pid: number, sig: NodeJS.Signals): boolean => {
  try {
    process.kill(pid, sig)
    return true
  } catch {
    return false
  }
}

/** The same process as before: alive, with the start time it had (a reused pid is someone else). */
const sameProcess = (pid: number, starttime: string | undefined): boolean => !processGone(pid) && readStat(pid)?.starttime === starttime

/** The components a fault kind can hit; `undefined` when the kind does not apply to this tree (and why). */
export const targetsOf = (kind: FaultKind, components: ReadonlyArray<string>, tree: Tree, ids: ReadonlyArray<string>): { readonly targets: ReadonlyArray<string> } | { readonly skip: string } => {
  switch (kind) {
    case "sigkill":
    case "sigstop":
    case "restart":
      return { targets: components }
    case "pg-down":
      return ids.includes("postgres") ? { targets: ["postgres"] } : { skip: "the tree has no postgres of its own (postgres.url is external)" }
    case "memcached-hang":
      return ids.includes("memcached") ? { targets: ["memcached"] } : { skip: "the tree has no memcached (cache.enabled is false)" }
    case "disk-full":
      return tree.fillable ? { targets: ["data-dir"] } : { skip: "the data dir is not a filesystem the harness mounted (only a tree it owns gets a tmpfs)" }
  }
}

/** Holds `pid` stopped until the supervisor kills it or the hold is over; then it is let go (SIGCONT) if still there. */
const holdStopped = async (ctx: FaultContext, pid: number, starttime: string | undefined, holdMs: number): Promise<{ readonly killedAfter: number | null }> => {
  const t0 = ctx.now()
  while (ctx.now() - t0 < holdMs) {
    if (!sameProcess(pid, starttime)) return { killedAfter: ctx.now() - t0 }
    await sleep(50)
  }
  if (sameProcess(pid, starttime)) signal(pid, "SIGCONT")
  return { killedAfter: null }
}

export const injectFault = async (ctx: FaultContext, n: number, kind: FaultKind, component: string): Promise<FaultRecord> => {
  // a component still coming back (or restarted with its supervisor) gets a moment before it counts as not there
  if (component !== "data-dir") await ctx.monitor.healed(component, [], TARGET_WAIT_MS)
  const rows = await ctx.monitor.refresh()
  const row = rows.find((r) => r.id === component)
  const pid = component === "data-dir" ? null : (row?.pid ?? null)
  const fault: FaultRecord = { n, kind, component, pid, hit: pid === null ? [] : [pid], startMs: ctx.now(), endMs: ctx.now(), healedMs: null, detail: "", diedMs: null }
  if (component !== "data-dir" && (pid === null || row?.state !== "running")) {
    fault.detail = `skipped: ${component} was ${row?.state ?? "not in status"}, no process to hit`
    fault.healedMs = fault.startMs
    return fault
  }
  const starttime = pid !== null ? readStat(pid)?.starttime : undefined
  const holdMs = ctx.tree.livenessBoundMs + STOP_MARGIN_MS
  const outageMs = Math.min(MAX_OUTAGE_MS, ctx.everyMs)
  switch (kind) {
    case "sigkill": {
      signal(pid!, "SIGKILL")
      fault.diedMs = fault.startMs
      fault.detail = `SIGKILL pid ${pid}`
      break
    }
    case "sigstop":
    case "memcached-hang": {
      signal(pid!, "SIGSTOP")
      const { killedAfter } = await holdStopped(ctx, pid!, starttime, holdMs)
      fault.diedMs = killedAfter === null ? null : fault.startMs + killedAfter
      fault.detail = killedAfter === null
        ? `SIGSTOP pid ${pid}: still stopped after ${holdMs} ms (liveness bound ${ctx.tree.livenessBoundMs} ms), let go with SIGCONT`
        : `SIGSTOP pid ${pid}: the supervisor killed it after ${killedAfter} ms (liveness bound ${ctx.tree.livenessBoundMs} ms)`
      break
    }
    case "restart": {
      try {
        await ctx.tree.restart(component)
        fault.detail = `sagews restart ${component} (pid ${pid}) returned after ${ctx.now() - fault.startMs} ms`
      } catch (e) {
        fault.detail = `sagews restart ${component} failed: ${(e as Error).message}`
      }
      fault.diedMs = ctx.now()
      break
    }
    case "pg-down": {
      // Down for a period: the postmaster and every postmaster the supervisor starts in its place are SIGKILLed
      // the moment status shows them, until the period is over.
      let kills = 0
      const killed = new Set<number>()
      while (ctx.now() - fault.startMs < outageMs) {
        const p = (await ctx.monitor.refresh()).find((r) => r.id === "postgres")?.pid
        if (p !== undefined && p !== null && !killed.has(p) && signal(p, "SIGKILL")) {
          killed.add(p)
          if (!fault.hit.includes(p)) fault.hit.push(p)
          kills++
        }
        await sleep(100)
      }
      fault.endMs = ctx.now()
      fault.diedMs = fault.startMs
      fault.detail = `PostgreSQL down for ${outageMs} ms: SIGKILL of pid ${pid} and of every postmaster started meanwhile (${kills} kills)`
      break
    }
    case "disk-full": {
      const file = join(ctx.tree.dataDir, "chaos-fill")
      let written = 0
      let full = false
      const fd = openSync(file, "w")
      try {
        for (;;) {
          try {
            written += writeSync(fd, FILL_CHUNK)
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e
            full = true
            break
          }
        }
      } finally {
        closeSync(fd)
      }
      await sleep(outageMs)
      unlinkSync(file)
      fault.endMs = ctx.now()
      fault.detail = `data dir filled with ${Math.round(written / 2 ** 20)} MiB${full ? " (ENOSPC)" : ""} for ${outageMs} ms, then emptied`
      break
    }
  }
  if (kind === "sigkill" || kind === "sigstop" || kind === "memcached-hang" || kind === "restart") fault.endMs = fault.startMs
  return fault
}

/** Waits for the fault's component to run again (a new process, except after disk-full: any running tree). */
export const awaitHeal = async (ctx: FaultContext, fault: FaultRecord): Promise<void> => {
  if (fault.healedMs !== null) return
  if (fault.component === "data-dir") {
    const down = await ctx.monitor.waitAllRunning(HEAL_TIMEOUT_MS)
    fault.healedMs = down.length === 0 ? ctx.now() : null
    return
  }
  fault.healedMs = await ctx.monitor.healed(fault.component, fault.hit, HEAL_TIMEOUT_MS)
}
