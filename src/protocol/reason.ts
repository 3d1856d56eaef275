// How a session's end goes on the wire and reads to a person. The reason itself is the house's one ExitReason
// (supervisors/exit.ts); the wire carries the session subset of it, and `endSentence` is the one place that words it.
import { z } from "zod"
import { ExitReason } from "../../supervisors/exit.ts"

/** The session limits a `Timeout` names on the wire. */
export const SessionTimeout = z.enum(["wall", "idle", "exec"])

/** `reason` of an `ended` frame: an ExitReason of a session child, as JSON. */
export const EndReason = z.discriminatedUnion("_tag", [
  /** a stateless `run` finished, or the kernel exited by itself with success */
  z.object({ _tag: z.literal("Normal") }),
  z.object({ _tag: z.literal("Timeout"), limit: SessionTimeout }),
  z.object({ _tag: z.literal("CpuLimit") }),
  z.object({ _tag: z.literal("OutOfMemory") }),
  z.object({ _tag: z.literal("Killed"), signal: z.string() }),
  z.object({ _tag: z.literal("Crash"), detail: z.string() }),
  z.object({ _tag: z.literal("ClosedByUser") }),
  z.object({ _tag: z.literal("ClosedByOperator") }),
  z.object({ _tag: z.literal("WorkerStopped") }),
  /** the cluster lost the host of the session's worker (its heartbeat and its links stopped): `host` names it */
  z.object({ _tag: z.literal("WorkerLost"), host: z.string() }),
])
export type EndReason = z.infer<typeof EndReason>

/**
 * A session child's exit as the wire's reason. A supervisor's plain Shutdown of a session is its worker stopping;
 * a Timeout other than a session limit (a kernel that never applied its sandbox) is a Crash that says so.
 */
export const toWire = (reason: ExitReason): EndReason => {
  switch (reason._tag) {
    case "Shutdown":
      return { _tag: "WorkerStopped" }
    case "Crash":
      return { _tag: "Crash", detail: reason.code !== undefined ? `${reason.detail} (exit ${reason.code})` : reason.detail }
    case "Killed":
      return { _tag: "Killed", signal: reason.signal }
    case "WorkerLost":
      return { _tag: "WorkerLost", host: reason.host }
    case "Timeout": {
      const limit = SessionTimeout.safeParse(reason.limit)
      return limit.success ? { _tag: "Timeout", limit: limit.data } : { _tag: "Crash", detail: `timed out: ${reason.limit}` }
    }
    default:
      return { _tag: reason._tag }
  }
}

/** The wire's reason back as the house's ExitReason (the backend's view of a session it routes). */
export const fromWire = (reason: EndReason): ExitReason => {
  switch (reason._tag) {
    case "Crash":
      return ExitReason.Crash({ detail: reason.detail })
    case "Killed":
      return ExitReason.Killed({ signal: reason.signal })
    case "Timeout":
      return ExitReason.Timeout({ limit: reason.limit })
    case "WorkerLost":
      return ExitReason.WorkerLost({ host: reason.host })
    default:
      return ExitReason[reason._tag]()
  }
}

/** The name of the limit behind an end reason, if one was (the browser's `limit` field). */
export const limitOf = (reason: EndReason): string | undefined =>
  reason._tag === "Timeout" ? reason.limit : reason._tag === "OutOfMemory" ? "memory" : reason._tag === "CpuLimit" ? "cpu" : undefined

/** The values of the limits a sentence names (seconds, MiB). */
export interface LimitValues {
  readonly wall: number
  readonly idle: number
  readonly exec: number
  readonly memory: number
  readonly cpu: number
}

/** The sentence a user reads when a session ends: what happened, the limit's value, what to do. */
export const endSentence = (reason: EndReason, limits?: LimitValues): string => {
  const value = (n: number | undefined, unit: string): string => (n === undefined ? "" : ` (${n} ${unit})`)
  switch (reason._tag) {
    case "Normal":
      return "the execution finished"
    case "Timeout":
      return `the session reached its ${reason.limit} time limit${value(limits?.[reason.limit], "s")} and was ended; start a new session to continue`
    case "CpuLimit":
      return `the session used its CPU time${value(limits?.cpu, "CPU seconds")} and was ended; start a new session to continue`
    case "OutOfMemory":
      return `the session exceeded its memory limit${value(limits?.memory, "MiB")} and was ended; start a new session to continue`
    case "Killed":
      return `the session's kernel was killed by ${reason.signal}`
    case "Crash":
      return `the session's kernel crashed: ${reason.detail}`
    case "ClosedByUser":
      return "the session was closed"
    case "ClosedByOperator":
      return "an operator ended this session; start a new session to continue"
    case "WorkerStopped":
      return "the worker running this session stopped; start a new session"
    case "WorkerLost":
      return `the host running this session (${reason.host}) was lost: its machine or its network failed, and the session's state is gone; start a new session`
  }
}
