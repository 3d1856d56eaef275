// Supervisor declarations as data (static and dynamic), and the one constant that holds every default.
// Child-level defaults live next to the child contract, in CHILD_DEFAULTS (child.ts).
import type { Duration } from "effect"
import type { ChildSpec } from "./child.ts"

export type Strategy = "one_for_one" | "one_for_all" | "rest_for_one"

/** Capped exponential delay between restarts of one child: initial, initial*factor, ... up to max. */
export interface BackoffOptions {
  readonly initial?: Duration.Input
  readonly factor?: number
  readonly max?: Duration.Input
  /** A child that stayed up this long starts its backoff over from `initial`. */
  readonly resetAfter?: Duration.Input
}

export interface SupervisorSpec {
  readonly id: string
  readonly strategy?: Strategy
  /** At most `intensity` restarts in `period` seconds; one more and the supervisor escalates. */
  readonly intensity?: number
  readonly period?: number
  readonly backoff?: BackoffOptions
  readonly children: ReadonlyArray<ChildSpec>
}

/** A dynamic supervisor starts empty; children come and go at run time (sessions). */
export interface DynamicSupervisorSpec {
  readonly id: string
  readonly intensity?: number
  readonly period?: number
  readonly backoff?: BackoffOptions
  /** A start past this many live children (starting ones included) is refused with MaxChildrenReached. */
  readonly maxChildren?: number
  /** The same per `key` given to startChild (say, a user): refused with MaxChildrenPerKeyReached. */
  readonly maxChildrenPerKey?: number
  /** How long the record of an ended child (`ended`, `endedChild`) is kept. */
  readonly keepEnded?: Duration.Input
  /** At most this many records of ended children are kept; the oldest go first. */
  readonly maxEnded?: number
}

export const SUPERVISOR_DEFAULTS = {
  strategy: "one_for_one",
  /** OTP's default is 1 restart in 5 s; 3 leaves room for a flaky start without waking the parent. */
  intensity: 3,
  period: 5,
  backoff: {
    initial: "100 millis",
    factor: 2,
    max: "5 seconds",
    resetAfter: "10 seconds",
  },
  maxChildren: Number.POSITIVE_INFINITY,
  maxChildrenPerKey: Number.POSITIVE_INFINITY,
  /** Long enough to answer "why did my session end?" after a reconnect, short enough not to grow without end. */
  keepEnded: "1 hour",
  /** About a day of sessions on a busy worker, a few MB at most. */
  maxEnded: 10_000,
} as const satisfies {
  strategy: Strategy
  intensity: number
  period: number
  backoff: Required<BackoffOptions>
  maxChildren: number
  maxChildrenPerKey: number
  keepEnded: Duration.Input
  maxEnded: number
}

/** A backoff policy with every field resolved to milliseconds. */
export interface ResolvedBackoff {
  readonly initialMs: number
  readonly factor: number
  readonly maxMs: number
  readonly resetAfterMs: number
}

export type ChildSpecResolved = Required<Omit<ChildSpec, "start">> & Pick<ChildSpec, "start">

/** A validated declaration: defaults applied, durations in ms. Static and dynamic share one engine. */
export interface ResolvedSupervisor {
  readonly id: string
  readonly strategy: Strategy
  readonly intensity: number
  readonly periodMs: number
  readonly backoff: ResolvedBackoff
  readonly maxChildren: number
  readonly maxChildrenPerKey: number
  /** Dynamic supervisors keep records of ended children this long, at most `maxEnded`; static ones keep none. */
  readonly keepEndedMs: number
  readonly maxEnded: number
  readonly children: ReadonlyArray<ChildSpecResolved>
}
