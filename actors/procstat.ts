// Reads /proc: a process's state, start time and process group, and which processes of a group are still alive.
// Zombies count as gone: they cannot be killed, only reaped by their parent (a subreaper such as `tini -s`).
import { readFileSync, readdirSync } from "node:fs"

export interface ProcStat {
  readonly pid: number
  /** field 3: R, S, D, T (stopped), t (traced), Z (zombie), ... */
  readonly state: string
  readonly ppid: number
  readonly pgrp: number
  /** field 22: clock ticks since boot; with the pid it names one process for good */
  readonly starttime: string
}

/** The parsed `/proc/<pid>/stat`, or undefined when the process does not exist. */
export const readStat = (pid: number): ProcStat | undefined => {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8")
  } catch {
    return undefined
  }
  // comm (field 2) may hold spaces and parentheses: the fields that follow start after the last ")".
  const fields = text.slice(text.lastIndexOf(")") + 2).trim().split(" ")
  const state = fields[0]
  const ppid = fields[1]
  const pgrp = fields[2]
  const starttime = fields[19]
  if (state === undefined || ppid === undefined || pgrp === undefined || starttime === undefined) return undefined
  return { pid, state, ppid: Number(ppid), pgrp: Number(pgrp), starttime }
}

/** Living (non-zombie) processes of process group `pgid`. */
export const groupMembers = (pgid: number): ReadonlyArray<ProcStat> => {
  const members: Array<ProcStat> = []
  for (const name of readdirSync("/proc")) {
    const pid = Number(name)
    if (!Number.isInteger(pid) || pid <= 0) continue
    const stat = readStat(pid)
    if (stat !== undefined && stat.pgrp === pgid && stat.state !== "Z") members.push(stat)
  }
  return members
}

/** True when no process of the group is left but zombies. `kill(-pgid, 0)` answers fast when none is left at all. */
export const groupGone = (pgid: number): boolean => {
  try {
    process.kill(-pgid, 0)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return true
  }
  return groupMembers(pgid).length === 0
}

/** True when `pid` is gone or a zombie. */
export const processGone = (pid: number): boolean => {
  const stat = readStat(pid)
  return stat === undefined || stat.state === "Z"
}

/** A living process, with its command line (arguments joined by spaces). */
export interface LivingProcess {
  readonly pid: number
  readonly cmdline: string
}

const readOrEmpty = (path: string): string => {
  try {
    return readFileSync(path, "latin1")
  } catch {
    return "" // it ended while we looked, or it is not ours to read
  }
}

/**
 * Every living (non-zombie) process but this one whose command line, or environment when asked, passes
 * `matches`. Tests use it to find what a data dir left running.
 */
export const livingProcesses = (
  matches: (p: LivingProcess & { readonly environ: () => ReadonlyArray<string> }) => boolean,
): Array<LivingProcess> =>
  readdirSync("/proc").flatMap((name) => {
    const pid = Number(name)
    if (!Number.isInteger(pid) || pid === process.pid || processGone(pid)) return []
    const p = { pid, cmdline: readOrEmpty(`/proc/${pid}/cmdline`).replaceAll("\0", " ").trimEnd() }
    return matches({ ...p, environ: () => readOrEmpty(`/proc/${pid}/environ`).split("\0") }) ? [p] : []
  })
