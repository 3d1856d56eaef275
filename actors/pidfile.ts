// Pid files (`<dataDir>/run/<id>.pid` = "<pid> <starttime>") and the leftovers of a previous life of the tree:
// a process group whose owner was kill -9ed is found through its pid file and SIGKILLed before a new start.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { dirname } from "node:path"
import { Effect } from "effect"
import { groupMembers, processGone, readStat } from "./procstat.ts"
import { awaitGroupGone, signalGroup, signalProcess } from "./signals.ts"

const LEFTOVER_POLL = "20 millis"

/** Writes `<pid> <starttime>` for a running process; fails (returns false) if the process is already gone. */
export const writePidFile = (path: string, pid: number): boolean => {
  const stat = readStat(pid)
  if (stat === undefined) return false
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, `${pid} ${stat.starttime}\n`)
  return true
}

export const removePidFile = (path: string): void => rmSync(path, { force: true })

export interface PidFileContent {
  readonly pid: number
  readonly starttime: string
}

export const readPidFile = (path: string): PidFileContent | undefined => {
  let text: string
  try {
    text = readFileSync(path, "utf8")
  } catch {
    return undefined
  }
  const [pid, starttime] = text.trim().split(/\s+/)
  if (pid === undefined || starttime === undefined || !/^\d+$/.test(pid)) return undefined
  return { pid: Number(pid), starttime }
}

/** What `cleanLeftover` found. */
export type Leftover =
  | { readonly _tag: "None" }
  /** the pid now names another process (the pid was reused): left alone */
  | { readonly _tag: "Reused"; readonly pid: number }
  /** the previous life's group was still there and was killed */
  | { readonly _tag: "Killed"; readonly pid: number; readonly processes: number }

/**
 * If the pid file names a process that still exists with the same start time, or its process group still
 * has members although the leader is gone (a pid is not reused while it names a live group), SIGKILL the
 * group and wait until it is gone. The pid file is removed in every case.
 */
export const cleanLeftover = (path: string): Effect.Effect<Leftover> =>
  Effect.gen(function*() {
    const content = readPidFile(path)
    if (content === undefined) {
      removePidFile(path)
      return { _tag: "None" } as const
    }
    const { pid, starttime } = content
    const stat = readStat(pid)
    let leftover: Leftover
    if (stat !== undefined && stat.starttime !== starttime) {
      leftover = { _tag: "Reused", pid }
    } else {
      const members = groupMembers(pid)
      const leaderAlive = stat !== undefined && stat.state !== "Z"
      if (!leaderAlive && members.length === 0) {
        leftover = { _tag: "None" }
      } else {
        const processes = members.length + (leaderAlive && stat.pgrp !== pid ? 1 : 0)
        signalGroup(pid, "SIGKILL")
        // The leader may have left its group (setsid): kill it by pid as well.
        if (leaderAlive && stat.pgrp !== pid) signalProcess(pid, "SIGKILL")
        while (!processGone(pid)) yield* Effect.sleep(LEFTOVER_POLL)
        yield* awaitGroupGone(pid)
        leftover = { _tag: "Killed", pid, processes }
      }
    }
    removePidFile(path)
    return leftover
  })
