// Maps how a child process ended (exit code or signal, and who asked it to stop) onto the tree's ExitReason.
// OOM detection is best effort: a SIGKILL while the kernel's oom_kill counter went up counts as OutOfMemory.
import { readFileSync } from "node:fs"
import { ExitReason } from "../supervisors/exit.ts"

/** Why the tree itself ended the child, if it did: decides the reason whatever the exit status says. */
export type StopCause = "shutdown" | "liveness" | "readiness"

export interface ProcessEnd {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly requested: StopCause | undefined
  /** last lines the child wrote on stderr, oldest first */
  readonly stderrTail: ReadonlyArray<string>
  /** kernel OOM kills counted while the child ran (see `oomKills`) */
  readonly oomKillsDuring: number
}

export const exitReasonOf = (end: ProcessEnd): ExitReason => {
  switch (end.requested) {
    case "shutdown":
      return ExitReason.Shutdown()
    case "liveness":
    case "readiness":
      return ExitReason.Timeout({ limit: end.requested })
    case undefined:
      break
  }
  if (end.signal !== null) {
    if (end.signal === "SIGKILL" && end.oomKillsDuring > 0) return ExitReason.OutOfMemory()
    return ExitReason.Killed({ signal: end.signal })
  }
  const code = end.code ?? 0
  if (code === 0) return ExitReason.Normal()
  const tail = end.stderrTail.join("\n").trim()
  return ExitReason.Crash({ code, detail: tail === "" ? `exited with code ${code}` : tail })
}

/**
 * The kernel's count of OOM kills (`oom_kill` in /proc/vmstat, Linux >= 4.13); 0 when unknown.
 * Host-wide, so a concurrent OOM kill elsewhere can be mistaken for ours: good enough to tell a
 * memory hog from an operator's `kill -9`, and a cgroup's memory.events can replace it later.
 */
export const oomKills = (): number => {
  try {
    const match = /^oom_kill (\d+)$/m.exec(readFileSync("/proc/vmstat", "utf8"))
    return match?.[1] !== undefined ? Number(match[1]) : 0
  } catch {
    return 0
  }
}
