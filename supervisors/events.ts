// Supervision events: every start, ready, exit, restart, escalation and stop, published for `status` and logged.
// One typed shape for all of them; the log line is annotated with the supervisor and child ids.
import { Clock, Context, Effect, PubSub } from "effect"
import { type ExitReason, formatExit, isAbnormal } from "./exit.ts"

export type EventKind = "start" | "ready" | "exit" | "restart" | "escalation" | "stop"

export interface SupervisorEvent {
  /** epoch ms, from Effect's Clock */
  readonly ts: number
  readonly supervisor: string
  /** absent for events about the supervisor itself (its own stop) */
  readonly child?: string | undefined
  readonly kind: EventKind
  /** exit: why the child ended (its own exit, a failed start, terminateChild's reason); stop: the reason recorded */
  readonly reason?: ExitReason | undefined
  readonly pid?: number | undefined
  /** restart: how many restarts in a row this child's backoff has seen (1 = first) */
  readonly attempt?: number | undefined
  /** restart: how long the supervisor waits before starting it again */
  readonly delayMs?: number | undefined
  /** restart: true for an operator's restartChild (not counted against intensity) */
  readonly operator?: boolean | undefined
  /** escalation: restarts in the window and the window itself */
  readonly restarts?: number | undefined
  readonly period?: number | undefined
}

/** How many past events a supervisor keeps for `status` and late subscribers. */
export const EVENT_HISTORY = 200

export interface EventLog {
  readonly pubsub: PubSub.PubSub<SupervisorEvent>
  readonly recent: Effect.Effect<ReadonlyArray<SupervisorEvent>>
  /** Records an event (its own or a descendant's) in the history and publishes it; no logging. */
  readonly record: (event: SupervisorEvent) => Effect.Effect<void>
  readonly emit: (event: Omit<SupervisorEvent, "ts" | "supervisor">) => Effect.Effect<void>
}

const describe = (e: SupervisorEvent): string => {
  const who = e.child ?? "supervisor"
  switch (e.kind) {
    case "start":
      return `starting ${who}`
    case "ready":
      return `${who} is ready${e.pid !== undefined ? ` (pid ${e.pid})` : ""}`
    case "exit":
      return `${who} exited: ${e.reason ? formatExit(e.reason) : "?"}`
    case "restart":
      return e.operator
        ? `${who}: operator restart`
        : `${who}: restart #${e.attempt} in ${e.delayMs} ms`
    case "escalation":
      return `${e.restarts} restarts in ${e.period} s after ${who} exited ${e.reason ? formatExit(e.reason) : "?"}: giving up`
    case "stop":
      if (e.child === undefined) return `supervisor ${e.supervisor} stopped`
      return e.reason === undefined || e.reason._tag === "Shutdown" ? `stopped ${who}` : `stopped ${who}: ${formatExit(e.reason)}`
  }
}

const log = (e: SupervisorEvent): Effect.Effect<void> => {
  const message = describe(e)
  const line = e.kind === "escalation"
    ? Effect.logError(message)
    : e.kind === "exit" && e.reason !== undefined && isAbnormal(e.reason)
    ? Effect.logWarning(message)
    : Effect.logInfo(message)
  return line.pipe(Effect.annotateLogs({ supervisor: e.supervisor, child: e.child ?? e.supervisor, event: e.kind }))
}

/**
 * The event streams of the supervisors above this one. A supervisor provides it to its children's `start`,
 * so a nested supervisor also publishes on every ancestor's stream: the root's `events` carry the whole tree.
 */
export const AncestorEvents = Context.Reference<ReadonlyArray<Pick<EventLog, "record">>>(
  "sagews/supervisors/AncestorEvents",
  { defaultValue: () => [] },
)

export const makeEventLog = (supervisor: string): Effect.Effect<EventLog> =>
  Effect.gen(function*() {
    const ancestors = yield* AncestorEvents
    const pubsub = yield* PubSub.sliding<SupervisorEvent>(1024)
    const history: Array<SupervisorEvent> = []
    const record = (event: SupervisorEvent) =>
      Effect.suspend(() => {
        history.push(event)
        if (history.length > EVENT_HISTORY) history.shift()
        return PubSub.publish(pubsub, event)
      })
    return {
      pubsub,
      recent: Effect.sync(() => history.slice()),
      record,
      emit: (event) =>
        Effect.gen(function*() {
          const full: SupervisorEvent = { ts: yield* Clock.currentTimeMillis, supervisor, ...event }
          yield* record(full)
          for (const up of ancestors) yield* up.record(full)
          yield* log(full)
        }),
    }
  })
