// Stopping a dynamic supervisor stops its children all at once, each honouring its own shutdown (a static one
// still stops in reverse order, one after another); stopWith records its reason as every child's exit.
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import type { Shutdown } from "../../supervisors/child.ts"
import { makeDynamic } from "../../supervisors/dynamic.ts"
import { ExitReason } from "../../supervisors/exit.ts"
import { SHUTDOWN_GRACE_MS } from "../../supervisors/slot.ts"
import { make } from "../../supervisors/supervisor.ts"
import { count, isDone, makeChild, promptly, settle } from "./harness.ts"

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

/** Moves the clock to `ms` after `t0` and says whether `fiber` has ended by then. */
const doneAt = (fiber: Fiber.Fiber<unknown, unknown>, ms: number, t0: number) =>
  Effect.gen(function*() {
    yield* TestClock.setTime(t0 + ms)
    yield* settle
    return isDone(fiber)
  })

describe("dynamic stop", () => {
  it.effect("200 children that each take 1 s to stop: the stop takes 1 s, not 200", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const sup = yield* makeDynamic({ id: "sessions" })
      for (const i of range(200)) yield* sup.startChild(makeChild(log, `s${i}`, { restart: "temporary", stopMs: 1_000 }).spec)
      const t0 = yield* Clock.currentTimeMillis
      const stopping = yield* Effect.forkChild(sup.stop)
      yield* settle // the stop begins at t0
      assert.isFalse(yield* doneAt(stopping, 999, t0))
      assert.isTrue(yield* doneAt(stopping, 1_000, t0))
      assert.strictEqual(log.filter((l) => l.startsWith("stop:")).length, 200)
      assert.strictEqual(yield* sup.count, 0)
      assert.strictEqual((yield* sup.ended).length, 200)
      const events = yield* sup.recentEvents
      assert.strictEqual(events.at(-1)?.kind, "stop")
      assert.strictEqual(events.at(-1)?.child, undefined)
    }))

  it.effect("a static supervisor still stops one child after another, in reverse order", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const kids = ["a", "b", "c"].map((id) => makeChild(log, id, { stopMs: 1_000 }))
      const sup = yield* make({ id: "sup", children: kids.map((k) => k.spec) })
      const t0 = yield* Clock.currentTimeMillis
      const stopping = yield* Effect.forkChild(sup.stop)
      yield* settle // the stop begins at t0
      assert.isFalse(yield* doneAt(stopping, 1_000, t0))
      assert.deepStrictEqual(log.slice(3), ["stop:c"])
      assert.isFalse(yield* doneAt(stopping, 2_999, t0))
      assert.isTrue(yield* doneAt(stopping, 3_000, t0))
      assert.deepStrictEqual(log.slice(3), ["stop:c", "stop:b", "stop:a"])
    }))

  it.effect("each child honours its own shutdown: the stop waits for the longest wait", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const sup = yield* makeDynamic({ id: "sessions" })
      const kids: ReadonlyArray<[string, Shutdown, number]> = [
        ["brutal", "brutal", 10_000], // not waited for
        ["bounded", 1_000, 10_000], // waited for 1 s + grace, then left to finish
        ["patient", "infinity", 3_000], // waited for
        ["quick", 5_000, 500],
      ]
      for (const [id, shutdown, stopMs] of kids) {
        yield* sup.startChild(makeChild(log, id, { restart: "temporary", shutdown, stopMs }).spec)
      }
      const t0 = yield* Clock.currentTimeMillis
      const stopping = yield* Effect.forkChild(sup.stop)
      yield* settle // the stop begins at t0
      assert.isFalse(yield* doneAt(stopping, 1_000 + SHUTDOWN_GRACE_MS, t0))
      assert.deepStrictEqual(log.filter((l) => l.startsWith("stop:")), ["stop:quick"])
      assert.isFalse(yield* doneAt(stopping, 2_999, t0))
      assert.isTrue(yield* doneAt(stopping, 3_000, t0))
      assert.deepStrictEqual(log.filter((l) => l.startsWith("stop:")), ["stop:quick", "stop:patient"])
      yield* doneAt(stopping, 10_000, t0)
      assert.strictEqual(log.filter((l) => l.startsWith("stop:")).length, 4) // the others still finish
    }))
})

describe("stopWith", () => {
  it.effect("records its reason as every child's exit and closes their scopes with it", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const sup = yield* makeDynamic({ id: "sessions" })
      const kids = ["s1", "s2", "s3"].map((id) => makeChild(log, id, { restart: "temporary" }))
      for (const k of kids) yield* sup.startChild(k.spec, { key: "ada" })
      yield* promptly(sup.stopWith(ExitReason.WorkerStopped()), "stopWith")
      for (const k of kids) assert.deepStrictEqual(k.closes(), [ExitReason.WorkerStopped()])
      const ended = yield* sup.ended
      assert.deepStrictEqual(ended.map((e) => [e.id, e.key, e.reason._tag]), [
        ["s1", "ada", "WorkerStopped"],
        ["s2", "ada", "WorkerStopped"],
        ["s3", "ada", "WorkerStopped"],
      ])
      const stops = (yield* sup.recentEvents).filter((e) => e.kind === "stop" && e.child !== undefined)
      assert.deepStrictEqual(stops.map((e) => e.reason), kids.map(() => ExitReason.WorkerStopped()))
      // Idempotent, and the supervisor takes no more children.
      yield* sup.stop
      assert.strictEqual(count(yield* sup.recentEvents, "stop"), 4)
      const refused = yield* Effect.flip(sup.startChild(makeChild(log, "s4").spec))
      assert.strictEqual(refused._tag, "SupervisorStopped")
    }))

  it.effect("a child already being terminated keeps the reason it was terminated with", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const sup = yield* makeDynamic({ id: "sessions" })
      const s1 = makeChild(log, "s1", { restart: "temporary", stopMs: 1_000 })
      const s2 = makeChild(log, "s2", { restart: "temporary", stopMs: 1_000 })
      yield* sup.startChild(s1.spec)
      yield* sup.startChild(s2.spec)
      const terminating = yield* Effect.forkChild(sup.terminateChild("s1", ExitReason.ClosedByUser()))
      yield* settle
      const stopping = yield* Effect.forkChild(sup.stopWith(ExitReason.WorkerStopped()))
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(terminating)
      yield* Fiber.join(stopping)
      assert.deepStrictEqual(s1.closes(), [ExitReason.ClosedByUser()])
      assert.deepStrictEqual(s2.closes(), [ExitReason.WorkerStopped()])
      assert.deepStrictEqual((yield* sup.endedChild("s1"))?.reason, ExitReason.ClosedByUser())
      assert.deepStrictEqual((yield* sup.endedChild("s2"))?.reason, ExitReason.WorkerStopped())
    }))
})
