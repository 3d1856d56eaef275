// Exit reasons: why a supervised child (process, fiber, session or supervisor) stopped.
// One tagged union for every kind of child, so restart policies, `status` and the log all read the same thing.
import { Data } from "effect"

export type ExitReason = Data.TaggedEnum<{
  /** Ended by itself with success (exit code 0, or a fiber that returned). */
  Normal: {}
  /** Ended because its supervisor (or an operator) asked it to stop. */
  Shutdown: {}
  /** Failed: a non-zero exit code, a failed effect, a failed readiness probe. */
  Crash: { readonly cause: string; readonly code?: number | undefined }
  /** Ended by a signal that nobody in the tree asked for (SIGKILL from outside, SIGSEGV, ...). */
  Killed: { readonly signal: string }
  /** A time limit ended it: a liveness probe, a readiness deadline, a session's wall/idle/exec limit. */
  Timeout: { readonly limit: string }
  /** The kernel or an rlimit ended it for memory. */
  OutOfMemory: {}
}>

export const ExitReason = Data.taggedEnum<ExitReason>()

/** `transient` children restart only on these. */
export const isAbnormal = (reason: ExitReason): boolean => reason._tag !== "Normal" && reason._tag !== "Shutdown"

/** A short human form for tables and logs: `Killed(SIGKILL)`, `Crash(exit 3)`, `Timeout(liveness)`. */
export const formatExit = (reason: ExitReason): string => {
  switch (reason._tag) {
    case "Normal":
    case "Shutdown":
    case "OutOfMemory":
      return reason._tag
    case "Crash":
      return `Crash(${reason.code !== undefined ? `exit ${reason.code}` : reason.cause})`
    case "Killed":
      return `Killed(${reason.signal})`
    case "Timeout":
      return `Timeout(${reason.limit})`
  }
}
