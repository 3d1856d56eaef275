// The supervision engine: one actor loop per supervisor (mailbox.ts) owns its children (roster.ts) and applies the
// restart strategy, intensity and backoff to every exit. Starts run beside the loop (slot.ts), which hears how they
// ended. A static supervisor stops children in its loop, in reverse order; a dynamic one beside it, all at once on stop.
import { Clock, Deferred, Effect, Fiber, Result, Scope } from "effect"
import type { ChildStatus, Running } from "./child.ts"
import type { ChildSpecResolved, ResolvedSupervisor } from "./declaration.ts"
import { type EndedLog, makeEndedLog } from "./ended.ts"
import { Escalation, type SupervisorStopped, UnknownChild } from "./errors.ts"
import { AncestorEvents, type EventLog, makeEventLog } from "./events.ts"
import { ExitReason, isAbnormal } from "./exit.ts"
import { makeRestartWindow } from "./intensity.ts"
import { makeMailbox } from "./mailbox.ts"
import { makeRoster } from "./roster.ts"
import {
  detach,
  type Incarnation,
  isAlive,
  launch,
  makeSlot,
  markRunning,
  type Slot,
  type Starting,
  type StartMode,
  type StartOutcome,
  statusOf,
  stopIncarnation,
} from "./slot.ts"

type Message =
  | { readonly _tag: "Exited"; readonly slot: Slot; readonly gen: number; readonly reason: ExitReason }
  | { readonly _tag: "Started"; readonly slot: Slot; readonly gen: number; readonly result: Result.Result<Running, ExitReason> }
  | { readonly _tag: "Closed"; readonly slot: Slot; readonly done: Deferred.Deferred<void> }
  | { readonly _tag: "Restart"; readonly token: number }

/**
 * What operator calls may do inside the loop (one at a time, between exits). Those that wait for a child return
 * the waiting as an Effect of their own, which the caller runs outside the loop.
 */
export interface Ops {
  readonly slots: () => ReadonlyArray<Slot>
  readonly has: (id: string) => boolean
  readonly size: () => number
  /** Children held under this key (dynamic), starting and stopping ones included. */
  readonly perKey: (key: string) => number
  /** Static supervisors: stops the child, starts it again at once; waits for that start. */
  readonly restart: (id: string) => Effect.Effect<Effect.Effect<void>, UnknownChild>
  /** Stops the child recording `reason` (a temporary or dynamic one is removed); waits until it has stopped. */
  readonly terminate: (id: string, reason: ExitReason) => Effect.Effect<Effect.Effect<void>, UnknownChild>
  /** Adds and starts a child (dynamic supervisors); waits for its start. A failed start removes it. */
  readonly add: (child: ChildSpecResolved, key: string | undefined) => Effect.Effect<Effect.Effect<StartOutcome>>
}

export interface Engine {
  readonly id: string
  readonly events: EventLog
  readonly children: Effect.Effect<ReadonlyArray<ChildStatus>>
  /** How many children it holds (dynamic: live ones, starting and stopping included). */
  readonly size: Effect.Effect<number>
  /** Dynamic supervisors: how their children ended. */
  readonly ended: EndedLog
  /** Runs `op` inside the supervisor's loop; fails with SupervisorStopped once it has stopped. */
  readonly call: <A, E>(op: (ops: Ops) => Effect.Effect<A, E>) => Effect.Effect<A, E | SupervisorStopped>
  /** Stops every child, recording `reason` as its exit, and waits. Idempotent: the first call's reason wins. */
  readonly stopWith: (reason: ExitReason) => Effect.Effect<void>
  readonly stop: Effect.Effect<void>
  readonly await: Effect.Effect<void, Escalation>
}

/** Builds the supervisor in the current Scope, starts its children in order and returns once that pass is done. */
export const makeEngine = (spec: ResolvedSupervisor, dynamic: boolean): Effect.Effect<Engine, never, Scope.Scope> =>
  Effect.gen(function*() {
    const outer = yield* Effect.scope
    const events = yield* makeEventLog(spec.id)
    const lineage = [...(yield* AncestorEvents), events]
    const ended = makeEndedLog(spec.keepEndedMs, spec.maxEnded)
    const done = yield* Deferred.make<void, Escalation>()
    const stopped = yield* Deferred.make<void>()
    const window = makeRestartWindow(spec.intensity, spec.periodMs)
    const roster = makeRoster(spec.children.map((c) => makeSlot(c, spec.backoff)), dynamic ? ended : undefined)
    const { owns, remove } = roster
    /** The children each scheduled restart will start, by token. */
    const restartGroups = new Map<number, ReadonlyArray<Slot>>()
    let terminated = false
    let stopping = false
    let seq = 0
    const { post, inLoop, serve } = yield* makeMailbox<Message>(spec.id)
    const provide = <A, E>(start: Effect.Effect<A, E>) => Effect.provideService(start, AncestorEvents, lineage)
    const start = (slot: Slot, mode: StartMode) =>
      Effect.map(
        launch(slot, mode, events, provide, (gen, result) => post({ _tag: "Started", slot, gen, result })),
        (starting) => starting.outcome,
      )

    /** The child has stopped: records `reason` and announces it as `kind`. A dynamic child leaves the supervisor. */
    const settle = (slot: Slot, reason: ExitReason, kind: "exit" | "stop", startedAt: number | undefined) =>
      Effect.gen(function*() {
        slot.state = "stopped"
        slot.lastExit = reason
        slot.startedAt = undefined
        yield* events.emit({ kind, child: slot.spec.id, reason })
        if (dynamic) yield* remove(slot, reason, startedAt)
      })

    /** Tells whoever waits for a start that the child was stopped before it was ready. */
    const cancelled = (starting: Starting | undefined, reason: ExitReason): Effect.Effect<void> =>
      Effect.suspend(() =>
        starting === undefined
          ? Effect.void
          : Effect.asVoid(Deferred.succeed(starting.outcome, { _tag: "Cancelled", reason, supervisorStopped: terminated }))
      )

    /** Stops a detached incarnation; a start it cut short hears so once its scope is closed. */
    const finish = (slot: Slot, inc: Incarnation, reason: ExitReason): Effect.Effect<void> =>
      Effect.andThen(stopIncarnation(slot.spec, inc, reason), cancelled(inc.starting, reason))

    /** Stops one child now, the caller waiting; `reason` is recorded as its exit and announced as `kind`. */
    const stopOne = (slot: Slot, reason: ExitReason, kind: "exit" | "stop" = "stop"): Effect.Effect<void> =>
      Effect.gen(function*() {
        slot.token = ++seq // cancels a pending restart
        const closing = slot.closing
        if (closing !== undefined) {
          // Already closing beside the loop (dynamic): its reason came first.
          yield* Fiber.await(closing.fiber)
          if (slot.closing !== closing) return
          slot.closing = undefined
          yield* settle(slot, closing.reason, "exit", closing.startedAt)
          yield* cancelled(closing.cut, closing.reason)
          yield* Deferred.succeed(closing.done, undefined)
          return
        }
        const startedAt = slot.startedAt
        const inc = detach(slot)
        if (inc === undefined) {
          if (slot.state !== "restarting") return
          if (kind === "exit") return yield* settle(slot, reason, kind, startedAt)
          slot.state = "stopped"
          if (dynamic) yield* remove(slot, reason, startedAt)
          return
        }
        slot.state = "stopping"
        yield* finish(slot, inc, reason)
        yield* settle(slot, reason, kind, startedAt)
      })

    /** Dynamic: closes the child's incarnation beside the loop; `after` runs in the loop once it has closed. */
    const closeAside = (
      slot: Slot,
      reason: ExitReason,
      after: (startedAt: number | undefined) => Effect.Effect<void>,
    ): Effect.Effect<Deferred.Deferred<void>> =>
      Effect.gen(function*() {
        slot.token = ++seq
        const startedAt = slot.startedAt
        const inc = detach(slot)
        slot.state = "stopping"
        const closed = yield* Deferred.make<void>()
        const close = Effect.andThen(
          inc === undefined ? Effect.void : stopIncarnation(slot.spec, inc, reason),
          Effect.sync(() => post({ _tag: "Closed", slot, done: closed })),
        )
        const fiber = yield* Effect.forkDetach(close)
        slot.closing = { fiber, reason, startedAt, cut: inc?.starting, done: closed, after: after(startedAt) }
        return closed
      })

    const closedAside = (slot: Slot, closed: Deferred.Deferred<void>) =>
      Effect.gen(function*() {
        const closing = slot.closing
        if (closing === undefined || closing.done !== closed) return
        slot.closing = undefined
        yield* closing.after
        yield* cancelled(closing.cut, closing.reason)
        yield* Deferred.succeed(closed, undefined)
      })

    // OTP stops a supervisor's children in reverse start order; Elixir's DynamicSupervisor stops them all at once.
    const stopAll = (reason: ExitReason) =>
      Effect.suspend(() => {
        const all = roster.all()
        return dynamic
          ? Effect.forEach(all, (s) => stopOne(s, reason), { concurrency: "unbounded", discard: true })
          : Effect.forEach(all.reverse(), (s) => stopOne(s, reason), { discard: true })
      })

    const escalate = (slot: Slot, reason: ExitReason, restarts: number) =>
      Effect.gen(function*() {
        terminated = true
        const period = spec.periodMs / 1000
        yield* events.emit({ kind: "escalation", child: slot.spec.id, reason, restarts, period })
        yield* stopAll(ExitReason.Shutdown())
        const error = new Escalation({
          supervisor: spec.id,
          child: slot.spec.id,
          reason,
          restarts,
          intensity: spec.intensity,
          period,
        })
        yield* Deferred.fail(done, error)
      })

    const groupOf = (slot: Slot): ReadonlyArray<Slot> => {
      if (spec.strategy === "one_for_one") return [slot]
      const all = roster.all()
      return spec.strategy === "one_for_all" ? all : all.slice(all.indexOf(slot))
    }

    /** The policy: restart type, intensity, strategy, backoff. The child has ended and its scope is closed. */
    const afterExit = (slot: Slot, reason: ExitReason, uptime: number, startedAt: number | undefined) =>
      Effect.gen(function*() {
        // Stopping: a start interrupted by the stop is no crash, and nothing is restarted or counted.
        if (terminated || !owns(slot)) return
        slot.state = "stopped"
        slot.lastExit = reason
        slot.startedAt = undefined
        yield* events.emit({ kind: "exit", child: slot.spec.id, reason })
        const restart = slot.spec.restart === "permanent" || (slot.spec.restart === "transient" && isAbnormal(reason))
        if (!restart) {
          if (dynamic || slot.spec.restart === "temporary") yield* remove(slot, reason, startedAt)
          return
        }
        const { exceeded, restarts } = yield* window.record
        if (exceeded) return yield* escalate(slot, reason, restarts)
        const group = groupOf(slot)
        const siblings = group.filter((s) => s !== slot && (isAlive(s) || s.state === "restarting"))
        for (const s of siblings.slice().reverse()) yield* stopOne(s, ExitReason.Shutdown())
        // OTP: temporary children stopped for a sibling's sake are not started again.
        for (const s of siblings) if (s.spec.restart === "temporary") yield* remove(s, ExitReason.Shutdown(), undefined)
        const again = group.filter((s) => s === slot || (siblings.includes(s) && s.spec.restart !== "temporary"))
        const { attempt, delayMs } = yield* slot.backoff.next(uptime)
        const token = ++seq
        for (const s of again) {
          s.state = "restarting"
          s.token = token
          s.restarts++
          yield* events.emit({ kind: "restart", child: s.spec.id, attempt, delayMs })
        }
        restartGroups.set(token, again)
        const fire = Effect.sync(() => post({ _tag: "Restart", token }))
        yield* Effect.forkIn(delayMs > 0 ? Effect.andThen(Effect.sleep(delayMs), fire) : fire, outer)
      })

    /** The child ended by itself: close its scope with its reason, then apply the policy. */
    const exited = (slot: Slot, reason: ExitReason) =>
      Effect.gen(function*() {
        const startedAt = slot.startedAt
        const uptime = startedAt === undefined ? 0 : (yield* Clock.currentTimeMillis) - startedAt
        const after = (at: number | undefined) => afterExit(slot, reason, uptime, at)
        if (dynamic) return yield* Effect.asVoid(closeAside(slot, reason, after))
        const inc = detach(slot)
        slot.state = "stopping"
        if (inc !== undefined) yield* finish(slot, inc, reason)
        yield* after(startedAt)
      })

    /** A start's fiber reported. A start stopped meanwhile is ignored: its stopper has finished it. */
    const started = (slot: Slot, gen: number, result: Result.Result<Running, ExitReason>) =>
      Effect.gen(function*() {
        const starting = slot.starting
        if (starting === undefined || starting.gen !== gen || !owns(slot)) return
        if (Result.isSuccess(result)) {
          const onExit = (g: number, reason: ExitReason) => Effect.sync(() => post({ _tag: "Exited", slot, gen: g, reason }))
          yield* markRunning(slot, result.success, onExit)
          yield* events.emit({ kind: "ready", child: slot.spec.id, pid: result.success.pid })
          yield* Deferred.succeed(starting.outcome, { _tag: "Ready", status: yield* statusOf(slot) })
          return
        }
        const reason = result.failure
        detach(slot) // the start closed its scope already
        if (starting.mode === "add") yield* settle(slot, reason, "exit", undefined)
        else yield* afterExit(slot, reason, 0, undefined)
        yield* Deferred.succeed(starting.outcome, { _tag: "Failed", reason })
      })

    /**
     * Starts these children one after another, each once the one before is ready, from a fiber beside the loop
     * (which serves exits and calls meanwhile). A failed start ends the pass unless the strategy is one_for_one.
     */
    const startInOrder = (group: ReadonlyArray<Slot>, eligible: (slot: Slot) => boolean) =>
      Effect.gen(function*() {
        for (const slot of group) {
          const outcome = yield* inLoop(
            Effect.suspend((): Effect.Effect<Deferred.Deferred<StartOutcome> | undefined> =>
              !terminated && owns(slot) && eligible(slot) ? start(slot, "policy") : Effect.succeed(undefined)
            ),
          )
          if (outcome === undefined) continue
          const result = yield* Deferred.await(outcome)
          if (result._tag === "Failed" && spec.strategy !== "one_for_one") return
        }
      }).pipe(Effect.catchTag("SupervisorStopped", () => Effect.void))

    const restartGroup = (token: number) =>
      Effect.suspend(() => {
        const group = restartGroups.get(token)
        restartGroups.delete(token)
        if (group === undefined) return Effect.void
        const eligible = (s: Slot) => owns(s) && s.state === "restarting" && s.token === token
        const [only] = group
        if (group.length === 1 && only !== undefined) return eligible(only) ? Effect.asVoid(start(only, "policy")) : Effect.void
        return Effect.asVoid(Effect.forkIn(startInOrder(group, eligible), outer))
      })

    const unknown = (id: string) => new UnknownChild({ supervisor: spec.id, child: id })
    const ops: Ops = {
      slots: roster.all,
      has: roster.has,
      size: roster.size,
      perKey: roster.perKey,
      restart: (id) =>
        Effect.gen(function*() {
          const slot = roster.get(id)
          if (slot === undefined) return yield* unknown(id)
          yield* stopOne(slot, ExitReason.Shutdown())
          slot.restarts++
          yield* events.emit({ kind: "restart", child: id, attempt: 0, delayMs: 0, operator: true })
          const outcome = yield* start(slot, "policy")
          return Effect.asVoid(Deferred.await(outcome))
        }),
      terminate: (id, reason) =>
        Effect.gen(function*() {
          const slot = roster.get(id)
          if (slot === undefined) return yield* unknown(id)
          const closing = slot.closing
          if (closing !== undefined) {
            // Already closing (after its own exit, say): that reason stays the one recorded, and it is not restarted.
            closing.after = settle(slot, closing.reason, "exit", closing.startedAt)
            return Deferred.await(closing.done)
          }
          if (!dynamic || slot.scope === undefined) {
            yield* stopOne(slot, reason, "exit")
            if (slot.spec.restart === "temporary") yield* remove(slot, reason, undefined)
            return Effect.void
          }
          const closed = yield* closeAside(slot, reason, (startedAt) => settle(slot, reason, "exit", startedAt))
          return Deferred.await(closed)
        }),
      add: (child, key) =>
        Effect.gen(function*() {
          const slot = makeSlot(child, spec.backoff, key)
          roster.add(slot)
          const outcome = yield* start(slot, "add")
          return Deferred.await(outcome)
        }),
    }

    const handle = (msg: Message): Effect.Effect<void> => {
      switch (msg._tag) {
        case "Exited":
          return msg.slot.gen === msg.gen && owns(msg.slot) ? exited(msg.slot, msg.reason) : Effect.void
        case "Started":
          return started(msg.slot, msg.gen, msg.result)
        case "Closed":
          return closedAside(msg.slot, msg.done)
        case "Restart":
          return restartGroup(msg.token)
      }
    }

    const loopFiber = yield* serve(handle, () => terminated)

    const shutdown = (reason: ExitReason) =>
      Effect.gen(function*() {
        terminated = true
        yield* Fiber.interrupt(loopFiber)
        yield* stopAll(reason)
        yield* events.emit({ kind: "stop" })
        yield* Deferred.succeed(done, undefined)
        yield* Deferred.succeed(stopped, undefined)
      })
    // Run detached: a child that asks its own supervisor to stop is itself stopped on the way.
    const stopWith = (reason: ExitReason) =>
      Effect.suspend(() => {
        if (stopping) return Deferred.await(stopped)
        stopping = true
        return Effect.flatMap(Effect.forkDetach(shutdown(reason)), Fiber.join)
      })
    const stop = stopWith(ExitReason.Shutdown())
    yield* Scope.addFinalizer(outer, stop)

    // The initial pass, in declared order; exits of the children already started are handled meanwhile.
    yield* startInOrder(roster.all(), (s) => s.gen === 0 && s.state === "stopped")
    return {
      id: spec.id,
      events,
      children: Effect.suspend(() => Effect.forEach(roster.all(), statusOf)),
      size: Effect.sync(roster.size),
      ended,
      call: (op) => inLoop(Effect.suspend(() => op(ops))),
      stopWith,
      stop,
      await: Deferred.await(done),
    }
  })
