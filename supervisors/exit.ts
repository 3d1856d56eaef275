// Exit reasons: why a supervised child (process, fiber, session or supervisor) stopped.
// The one tagged union of the house: restart policies, `status`, the log and the session wire (src/protocol/) read it.
import { Data } from "effect"

export type ExitReason = Data.TaggedEnum<{
  /** Ended by itself with success (exit code 0, a fiber that returned, a stateless run that finished). */
  Normal: {}
  /** Ended because its supervisor asked it to stop (the supervisor's own stop, a sibling's restart). */
  Shutdown: {}
  /** Failed: a non-zero exit code, a failed effect, a failed readiness probe, a session's kernel gone wrong. */
  Crash: { readonly detail: string; readonly code?: number | undefined }
  /** Ended by a signal that nobody in the tree asked for (SIGKILL from outside, SIGSEGV, a user's `kill -9 -1`). */
  Killed: { readonly signal: string }
  /** A time limit ended it: a liveness probe, a readiness deadline, a session's `wall`, `idle` or `exec` limit. */
  Timeout: { readonly limit: string }
  /** It used its CPU seconds (RLIMIT_CPU: SIGXCPU). */
  CpuLimit: {}
  /** Its memory limit: the cgroup's OOM killer struck, or an rlimit ended it. */
  OutOfMemory: {}
  /** A session its user closed (a `close`, or the user's code called `exit()`). */
  ClosedByUser: {}
  /** A session an operator ended (`sagews kill`). */
  ClosedByOperator: {}
  /** A session ended because its worker stopped. */
  WorkerStopped: {}
  /** A session ended because the cluster lost its worker's host (no heartbeat, no link): `host` names it. */
  WorkerLost: { readonly host: string }
}>

export const ExitReason = Data.taggedEnum<ExitReason>()

/** The reasons somebody asked for: `transient` children restart only on the others. */
const DELIBERATE: ReadonlySet<ExitReason["_tag"]> = new Set(["Normal", "Shutdown", "ClosedByUser", "ClosedByOperator", "WorkerStopped"])

/** `transient` children restart only on these. */
export const isAbnormal = (reason: ExitReason): boolean => !DELIBERATE.has(reason._tag)

/** A short human form for tables and logs: `Killed(SIGKILL)`, `Crash(exit 3)`, `Timeout(liveness)`. */
export const formatExit = (reason: ExitReason): string => {
  switch (reason._tag) {
    case "Crash":
      return `Crash(${reason.code !== undefined ? `exit ${reason.code}` : reason.detail})`
    case "Killed":
      return `Killed(${reason.signal})`
    case "Timeout":
      return `Timeout(${reason.limit})`
    case "WorkerLost":
      return `WorkerLost(${reason.host})`
    default:
      return reason._tag
  }
}
