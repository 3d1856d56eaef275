// Ends what a killed postmaster left behind (orphaned backends, a stale postmaster.pid) so the next start works.
// PostgreSQL processes keep their working directory in the cluster dir, which is how they are recognised.
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Effect } from "effect"

/** ms to wait for a leftover to exit after SIGKILL before giving up on it */
const LEFTOVER_WAIT = 5_000
const POLL = 20

/** Live (non-zombie) PostgreSQL processes whose working directory is `dir` (an operator's shell there is left alone). */
export const processesIn = async (dir: string): Promise<ReadonlyArray<number>> => {
  const target = await fs.realpath(dir).catch(() => dir)
  const found: Array<number> = []
  for (const entry of await fs.readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    const pid = Number(entry)
    if (pid === process.pid) continue
    const cwd = await fs.readlink(`/proc/${pid}/cwd`).catch(() => undefined)
    if (cwd !== target) continue
    const exe = await fs.readlink(`/proc/${pid}/exe`).catch(() => "")
    if (!/\/(postgres|postmaster)( \(deleted\))?$/.test(exe)) continue
    const stat = await fs.readFile(`/proc/${pid}/stat`, "utf8").catch(() => "")
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3)
    if (state !== "" && state !== "Z" && state !== "X") found.push(pid)
  }
  return found
}

const kill = (pid: number, signal: NodeJS.Signals): void => {
  try {
    process.kill(pid, signal)
  } catch {
    // already gone
  }
}

/**
 * SIGKILLs every process still running in the cluster dir and waits for them, then removes a stale postmaster.pid.
 * Call only when this cluster's postmaster is known not to be running under us (before a start).
 * Returns the pids it ended.
 */
export const clearLeftovers = (pgDir: string): Effect.Effect<ReadonlyArray<number>> =>
  Effect.promise(async () => {
    const leftovers = await processesIn(pgDir)
    for (const pid of leftovers) kill(pid, "SIGKILL")
    const deadline = Date.now() + LEFTOVER_WAIT
    while ((await processesIn(pgDir)).length > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, POLL))
    }
    // Nothing runs in the cluster any more, so the lock file is stale even if its pid was reused since.
    if ((await processesIn(pgDir)).length === 0) await fs.rm(path.join(pgDir, "postmaster.pid"), { force: true })
    return leftovers
  })
