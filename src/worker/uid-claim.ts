// A root worker's claim on its range of session uids, host-wide. Uids are the sandbox's boundary between sessions,
// and a starting worker kills whatever runs under its range (what its previous life left): two workers on one host,
// of two trees, with overlapping ranges would share uids and kill each other's sessions. So each holds a file
// /run/sagews/uids-<first>-<last> ("<pid> <data dir>") while it lives, and one whose range overlaps a live claim
// refuses to start, naming the other.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Data, Effect, type Scope } from "effect"
import { processGone } from "../../actors/procstat.ts"

/** where the claims live: a tmpfs that a reboot empties, with every worker of the host */
export const CLAIMS_DIR = "/run/sagews"

export interface UidRange {
  readonly first: number
  readonly last: number
}

/** Another live worker holds uids in this range. */
export class UidRangeTaken extends Data.TaggedError("UidRangeTaken")<{
  readonly range: UidRange
  readonly theirs: UidRange
  readonly pid: number
  readonly dataDir: string
}> {
  override get message(): string {
    return `session uids ${this.range.first}-${this.range.last} overlap ${this.theirs.first}-${this.theirs.last}, held by the live worker pid ${this.pid} of ${this.dataDir}: give one of the two trees another sessions.uidBase (config, or SAGEWS_SESSIONS_UID_BASE)`
  }
}

const CLAIM = /^uids-(\d+)-(\d+)$/

/** A claim's owner, if it is a worker that still lives (a dead one's claim is stale). */
const liveOwner = (path: string): { readonly pid: number; readonly dataDir: string } | undefined => {
  try {
    const [pid, ...dir] = readFileSync(path, "utf8").trim().split(" ")
    const n = Number(pid)
    if (!Number.isInteger(n) || n <= 0 || processGone(n)) return undefined
    if (!readFileSync(`/proc/${n}/cmdline`, "utf8").includes("worker/main.ts")) return undefined
    return { pid: n, dataDir: dir.join(" ") }
  } catch {
    return undefined
  }
}

/** Claims `range` for this process while the scope is open; fails if a live worker holds an overlapping one. */
export const claimUidRange = (range: UidRange, dataDir: string, dir: string = CLAIMS_DIR): Effect.Effect<void, UidRangeTaken, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.suspend(() => {
      mkdirSync(dir, { recursive: true, mode: 0o755 })
      for (const name of readdirSync(dir)) {
        const m = CLAIM.exec(name)
        if (m === null) continue
        const theirs = { first: Number(m[1]), last: Number(m[2]) }
        if (theirs.last < range.first || theirs.first > range.last) continue
        const owner = liveOwner(join(dir, name))
        if (owner !== undefined && owner.pid !== process.pid) return Effect.fail(new UidRangeTaken({ range, theirs, ...owner }))
        rmSync(join(dir, name), { force: true })
      }
      writeFileSync(join(dir, `uids-${range.first}-${range.last}`), `${process.pid} ${dataDir}\n`, { mode: 0o644 })
      return Effect.void
    }),
    () =>
      Effect.sync(() => {
        const path = join(dir, `uids-${range.first}-${range.last}`)
        const pid = (() => {
          try {
            return Number(readFileSync(path, "utf8").split(" ")[0])
          } catch {
            return undefined
          }
        })()
        if (pid === process.pid) rmSync(path, { force: true })
      }),
  )
