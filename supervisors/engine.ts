// The supervision engine: one actor loop per supervisor that owns its children's slots, applies the restart
// strategy, intensity and backoff to every exit, and stops everything in reverse order. Static and dynamic share it.
import { Clock, Deferred, Effect, Fiber, Queue, Scope } from "effect"
import type { ChildStatus } from "./child.ts"
import type { ChildSpecResolved, ResolvedSupervisor } from "./declaration.ts"
import { Escalation, SupervisorStopped, UnknownChild } from "./errors.ts"
import { AncestorEvents, type EventLog, makeEventLog } from "./events.ts"
import { ExitReason, isAbnormal } from "./exit.ts"
import { makeRestartWindow } from "./intensity.ts"
import { closeSlot, isAlive, makeSlot, type Slot, startSlot, statusOf } from "./slot.ts"

type Message =
  | { readonly _tag: "Exited"; readonly slot: Slot; readonly gen: number; readonly reason: ExitReason }
  | { readonly _tag: "Restart"; readonly token: number }
  | { readonly _tag: "Call"; readonly run: Effect.Effect<void>; readonly abort: Effect.Effect<void> }

/** What operator calls may do inside the loop (they run one at a time, between exits). */
export interface Ops {
  readonly slots: () => ReadonlyArray<Slot>
  readonly restart: (id: string) => Effect.Effect<void, UnknownChild>
  readonly terminate: (id: string) => Effect.Effect<void, UnknownChild>
  /** Adds and starts a child (dynamic supervisors); resolves to the failed start's reason, if any. */
  readonly add: (child: ChildSpecResolved) => Effect.Effect<ExitReason | undefined>
}

export interface Engine {
  readonly id: string
  readonly events: EventLog
  readonly children: Effect.Effect<ReadonlyArray<ChildStatus>>
  /** Runs `op` inside the supervisor's loop; fails with SupervisorStopped once it has stopped. */
  readonly call: <A, E>(op: (ops: Ops) => Effect.Effect<A, E>) => Effect.Effect<A, E | SupervisorStopped>
  readonly stop: Effect.Effect<void>
  readonly await: Effect.Effect<void, Escalation>
}

/** Builds the supervisor in the current Scope, starts its children in order and returns once that pass is done. */
export const makeEngine = (spec: ResolvedSupervisor, dynamic: boolean): Effect.Effect<Engine, never, Scope.Scope> =>
  Effect.gen(function*() {
    const outer = yield* Effect.scope
    const events = yield* makeEventLog(spec.id)
    const ancestors = yield* AncestorEvents
    const mailbox = yield* Queue.unbounded<Message>()
    const done = yield* Deferred.make<void, Escalation>()
    const initialized = yield* Deferred.make<void>()
    const stopped = yield* Deferred.make<void>()
    const window = makeRestartWindow(spec.intensity, spec.periodMs)
    let slots: Array<Slot> = spec.children.map((c) => makeSlot(c, spec.backoff))
    let terminated = false
    let closed = false
    let stopping = false
    let seq = 0

    const remove = (slot: Slot) => {
      slots = slots.filter((s) => s !== slot)
    }
    const find = (id: string) => slots.find((s) => s.spec.id === id)
    const provide = <A, E>(start: Effect.Effect<A, E>) =>
      Effect.provideService(start, AncestorEvents, [...ancestors, events])
    const start = (slot: Slot) =>
      startSlot(slot, events, provide, (gen, reason) =>
        Effect.sync(() => {
          Queue.offerUnsafe(mailbox, { _tag: "Exited", slot, gen, reason })
        }))

    const stopOne = (slot: Slot) =>
      Effect.gen(function*() {
        slot.token = ++seq // cancels a pending restart
        if (slot.scope === undefined && !isAlive(slot)) {
          if (slot.state === "restarting") slot.state = "stopped"
          return
        }
        slot.state = "stopping"
        yield* closeSlot(slot)
        slot.state = "stopped"
        slot.lastExit = ExitReason.Shutdown()
        yield* events.emit({ kind: "stop", child: slot.spec.id })
      })
    const stopAll = Effect.suspend(() => Effect.forEach(slots.slice().reverse(), stopOne, { discard: true }))

    const escalate = (slot: Slot, reason: ExitReason, restarts: number) =>
      Effect.gen(function*() {
        terminated = true
        const period = spec.periodMs / 1000
        yield* events.emit({ kind: "escalation", child: slot.spec.id, reason, restarts, period })
        yield* stopAll
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

    /** The policy: restart type, intensity, strategy, backoff. The child itself has already ended. */
    const handleExit = (slot: Slot, reason: ExitReason): Effect.Effect<void> =>
      Effect.gen(function*() {
        // Stopping: a start interrupted by the stop is no crash, and nothing is restarted or counted.
        if (terminated) return
        const now = yield* Clock.currentTimeMillis
        const uptime = slot.startedAt === undefined ? 0 : now - slot.startedAt
        yield* closeSlot(slot)
        slot.state = "stopped"
        slot.lastExit = reason
        yield* events.emit({ kind: "exit", child: slot.spec.id, reason })
        const restart = slot.spec.restart === "permanent" || (slot.spec.restart === "transient" && isAbnormal(reason))
        if (!restart) {
          if (dynamic || slot.spec.restart === "temporary") remove(slot)
          return
        }
        const { exceeded, restarts } = yield* window.record
        if (exceeded) return yield* escalate(slot, reason, restarts)
        const i = slots.indexOf(slot)
        const group = spec.strategy === "one_for_one"
          ? [slot]
          : spec.strategy === "one_for_all"
          ? slots.slice()
          : slots.slice(i)
        const siblings = group.filter((s) => s !== slot && (isAlive(s) || s.state === "restarting"))
        for (const s of siblings.slice().reverse()) yield* stopOne(s)
        // OTP: temporary children stopped for a sibling's sake are not started again.
        for (const s of siblings) if (s.spec.restart === "temporary") remove(s)
        const again = group.filter((s) => s === slot || (siblings.includes(s) && s.spec.restart !== "temporary"))
        const { attempt, delayMs } = yield* slot.backoff.next(uptime)
        const token = ++seq
        for (const s of again) {
          s.state = "restarting"
          s.token = token
          s.restarts++
          yield* events.emit({ kind: "restart", child: s.spec.id, attempt, delayMs })
        }
        const fire = Effect.sync(() => {
          Queue.offerUnsafe(mailbox, { _tag: "Restart", token })
        })
        yield* Effect.forkIn(delayMs > 0 ? Effect.andThen(Effect.sleep(delayMs), fire) : fire, outer)
      })

    /** Starts these children in list order; a failed start is an exit, handled at once. */
    const startInOrder = (group: ReadonlyArray<Slot>): Effect.Effect<void> =>
      Effect.gen(function*() {
        for (const slot of group) {
          if (terminated) return
          if (!slots.includes(slot)) continue
          const failed = yield* start(slot)
          if (failed === undefined) continue
          yield* handleExit(slot, failed)
          // one_for_all and rest_for_one: the rest now waits for the restart that handleExit scheduled.
          if (spec.strategy !== "one_for_one") return
        }
      })

    const ops: Ops = {
      slots: () => slots,
      restart: (id) =>
        Effect.gen(function*() {
          const slot = find(id)
          if (slot === undefined) return yield* new UnknownChild({ supervisor: spec.id, child: id })
          yield* stopOne(slot)
          slot.restarts++
          yield* events.emit({ kind: "restart", child: id, attempt: 0, delayMs: 0, operator: true })
          const failed = yield* start(slot)
          if (failed !== undefined) yield* handleExit(slot, failed)
        }),
      terminate: (id) =>
        Effect.gen(function*() {
          const slot = find(id)
          if (slot === undefined) return yield* new UnknownChild({ supervisor: spec.id, child: id })
          yield* stopOne(slot)
          if (dynamic || slot.spec.restart === "temporary") remove(slot)
        }),
      add: (child) =>
        Effect.gen(function*() {
          const slot = makeSlot(child, spec.backoff)
          slots.push(slot)
          const failed = yield* start(slot)
          if (failed !== undefined) {
            remove(slot)
            slot.lastExit = failed
            yield* events.emit({ kind: "exit", child: child.id, reason: failed })
          }
          return failed
        }),
    }

    const handle = (msg: Message): Effect.Effect<void> => {
      switch (msg._tag) {
        case "Exited":
          return msg.slot.gen === msg.gen && slots.includes(msg.slot) ? handleExit(msg.slot, msg.reason) : Effect.void
        case "Restart":
          return Effect.suspend(() =>
            startInOrder(slots.filter((s) => s.state === "restarting" && s.token === msg.token))
          )
        case "Call":
          return msg.run
      }
    }

    const loop = Effect.gen(function*() {
      yield* Effect.uninterruptible(startInOrder(slots.slice()))
      yield* Deferred.succeed(initialized, undefined)
      while (!terminated) {
        const msg = yield* Queue.take(mailbox)
        yield* Effect.uninterruptible(handle(msg))
      }
    }).pipe(
      Effect.ensuring(Effect.gen(function*() {
        closed = true
        yield* Deferred.succeed(initialized, undefined)
        const pending = yield* Queue.clear(mailbox)
        yield* Queue.shutdown(mailbox)
        for (const m of pending) if (m._tag === "Call") yield* m.abort
      })),
      Effect.annotateLogs({ supervisor: spec.id }),
    )
    const loopFiber = yield* Effect.forkIn(loop, outer)

    const shutdown = Effect.gen(function*() {
      terminated = true
      yield* Fiber.interrupt(loopFiber)
      yield* stopAll
      yield* events.emit({ kind: "stop" })
      yield* Deferred.succeed(done, undefined)
      yield* Deferred.succeed(stopped, undefined)
    })
    // Run detached: a child that asks its own supervisor to stop is itself stopped on the way.
    const stop = Effect.suspend(() => {
      if (stopping) return Deferred.await(stopped)
      stopping = true
      return Effect.flatMap(Effect.forkDetach(shutdown), Fiber.join)
    })
    yield* Scope.addFinalizer(outer, stop)

    const notRunning = new SupervisorStopped({ supervisor: spec.id })
    const call = <A, E>(op: (ops: Ops) => Effect.Effect<A, E>): Effect.Effect<A, E | SupervisorStopped> =>
      Effect.gen(function*() {
        if (closed) return yield* notRunning
        const reply = yield* Deferred.make<A, E | SupervisorStopped>()
        const run = Effect.exit(Effect.suspend(() => op(ops))).pipe(
          Effect.flatMap((exit) => Deferred.done(reply, exit)),
          Effect.onInterrupt(() => Deferred.fail(reply, notRunning)),
          Effect.asVoid,
        )
        const abort = Effect.asVoid(Deferred.fail(reply, notRunning))
        if (!Queue.offerUnsafe(mailbox, { _tag: "Call", run, abort })) return yield* notRunning
        return yield* Deferred.await(reply)
      })

    yield* Deferred.await(initialized)
    return {
      id: spec.id,
      events,
      children: Effect.suspend(() => Effect.forEach(slots.slice(), statusOf)),
      call,
      stop,
      await: Deferred.await(done),
    }
  })
