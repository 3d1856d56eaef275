// Tagged errors of the supervision engine: a bad declaration, an escalation, refused operator calls and starts.
// Each names the supervisor and the value involved, so a user-facing message can say what to do.
import { Data } from "effect"
import { type ExitReason, formatExit } from "./exit.ts"

const show = (value: unknown): string => {
  if (typeof value === "string") return JSON.stringify(value)
  if (typeof value === "function") return "a function"
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

/** A declaration field has a bad value, e.g. `children[2].restart` is "sometimes". */
export class InvalidSpec extends Data.TaggedError("InvalidSpec")<{
  readonly supervisor: string
  readonly field: string
  readonly value: unknown
  readonly expected: string
}> {
  override get message(): string {
    return `supervisor ${show(this.supervisor)}: ${this.field} is ${show(this.value)}; expected ${this.expected}`
  }
}

/** Restart intensity exceeded: the supervisor stopped all its children and gives up. */
export class Escalation extends Data.TaggedError("Escalation")<{
  readonly supervisor: string
  readonly child: string
  readonly reason: ExitReason
  /** restarts counted in the window, including the one that was refused */
  readonly restarts: number
  readonly intensity: number
  /** seconds */
  readonly period: number
}> {
  override get message(): string {
    return `supervisor ${show(this.supervisor)} gave up: child ${show(this.child)} exited ${formatExit(this.reason)}, ` +
      `${this.restarts} restarts in ${this.period} s exceed intensity ${this.intensity}`
  }
}

export class MaxChildrenReached extends Data.TaggedError("MaxChildrenReached")<{
  readonly supervisor: string
  readonly child: string
  readonly maxChildren: number
}> {
  override get message(): string {
    return `supervisor ${show(this.supervisor)} refused to start ${show(this.child)}: ` +
      `it already runs maxChildren = ${this.maxChildren} children; stop one or raise the limit`
  }
}

/** A dynamic supervisor's per-key cap (maxChildrenPerKey): that key, say a user, already runs that many children. */
export class MaxChildrenPerKeyReached extends Data.TaggedError("MaxChildrenPerKeyReached")<{
  readonly supervisor: string
  readonly child: string
  readonly key: string
  readonly maxChildrenPerKey: number
}> {
  override get message(): string {
    return `supervisor ${show(this.supervisor)} refused to start ${show(this.child)}: ` +
      `key ${show(this.key)} already has maxChildrenPerKey = ${this.maxChildrenPerKey} children; ` +
      `stop one of them or raise the limit`
  }
}

export class UnknownChild extends Data.TaggedError("UnknownChild")<{
  readonly supervisor: string
  readonly child: string
}> {
  override get message(): string {
    return `supervisor ${show(this.supervisor)} has no child ${show(this.child)}`
  }
}

/** The supervisor has stopped (or escalated); it takes no more calls. */
export class SupervisorStopped extends Data.TaggedError("SupervisorStopped")<{
  readonly supervisor: string
}> {
  override get message(): string {
    return `supervisor ${show(this.supervisor)} is stopped`
  }
}

/** A dynamic child's `start` failed, or it was terminated while starting (reason = terminateChild's); it was not added. */
export class ChildStartFailed extends Data.TaggedError("ChildStartFailed")<{
  readonly supervisor: string
  readonly child: string
  readonly reason: ExitReason
}> {
  override get message(): string {
    return `supervisor ${show(this.supervisor)} could not start ${show(this.child)}: ${formatExit(this.reason)}`
  }
}
