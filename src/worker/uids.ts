// Session uids: a fresh uid per live session from the configured range, never shared by two living sessions,
// and given back only once no process of it is left (`sweepUid` kills them all, wherever they went).
import { readdirSync, readFileSync } from "node:fs"
import { Effect, Schedule } from "effect"
import { signalProcess } from "../../actors/signals.ts"

export class UidPool {
  private readonly used = new Set<number>()
  private next: number
  private readonly first: number
  private readonly last: number

  constructor(first: number, last: number) {
    this.first = first
    this.last = last
    this.next = first
  }

  /** Round-robin over the range, so a uid is reused as late as possible. */
  allocate(): number | undefined {
    const size = this.last - this.first + 1
    for (let i = 0; i < size; i++) {
      const uid = this.next
      this.next = uid >= this.last ? this.first : uid + 1
      if (!this.used.has(uid)) {
        this.used.add(uid)
        return uid
      }
    }
    return undefined
  }

  release(uid: number): void {
    this.used.delete(uid)
  }

  get inUse(): number {
    return this.used.size
  }
}

export interface ProcInfo {
  readonly pid: number
  readonly uid: number
  readonly state: string
}

/** processes read per event-loop turn: synchronous reads of /proc are ~10x faster than async ones here */
const SCAN_BATCH = 256

/** Every process on the machine with its real uid and state (Z = zombie). */
export const listProcesses = async (): Promise<Array<ProcInfo>> => {
  const out: Array<ProcInfo> = []
  const pids = readdirSync("/proc").filter((name) => /^\d+$/.test(name))
  for (let i = 0; i < pids.length; i++) {
    if (i > 0 && i % SCAN_BATCH === 0) await new Promise((resolve) => setImmediate(resolve))
    try {
      const status = readFileSync(`/proc/${pids[i]}/status`, "utf8")
      const uid = /^Uid:\s+(\d+)/m.exec(status)?.[1]
      const state = /^State:\s+(\S)/m.exec(status)?.[1]
      if (uid !== undefined && state !== undefined) out.push({ pid: Number(pids[i]), uid: Number(uid), state })
    } catch {
      // the process ended while we looked
    }
  }
  return out
}

/** Rounds of looking for a uid's processes and killing them: 20 ms apart, about a second in all. */
const sweepRounds = Schedule.max([Schedule.spaced("20 millis"), Schedule.recurs(50)])

/** SIGKILLs every live process of `uid` until none is left (a forking process may add some while we look). */
export const sweepUid = (uid: number): Effect.Effect<boolean> =>
  Effect.repeat(
    Effect.promise(async () => {
      const alive = (await listProcesses()).filter((p) => p.uid === uid && p.state !== "Z")
      for (const p of alive) signalProcess(p.pid, "SIGKILL")
      return alive.length === 0
    }),
    { schedule: sweepRounds, until: (none) => none },
  )
