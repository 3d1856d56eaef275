// Starts run beside the supervisor's loop: a slow start (30 s of TestClock to readiness) delays no other start,
// exit, restart or operator call; static supervisors still start in declared order; a child stopped while it
// starts has its start interrupted and its scope closed.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import type { Strategy } from "../../supervisors/declaration.ts"
import { makeDynamic } from "../../supervisors/dynamic.ts"
import { ExitReason } from "../../supervisors/exit.ts"
import { make } from "../../supervisors/supervisor.ts"
import { count, isDone, makeChild, NO_BACKOFF, promptly, settle, waitFor } from "./harness.ts"

const crash = ExitReason.Crash({ detail: "boom" })
const SLOW = 30_000

describe("dynamic: a slow start", () => {
  it.effect("delays no other start, exit, restart or operator call", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const sup = yield* makeDynamic({ id: "sessions", backoff: NO_BACKOFF })
      const slow = makeChild(log, "slow", { restart: "temporary", startMs: SLOW })
      const slowStart = yield* Effect.forkChild(sup.startChild(slow.spec))
      yield* settle
      assert.deepStrictEqual(log, ["starting:slow"])

      const fast = yield* promptly(sup.startChild(makeChild(log, "fast", { restart: "temporary" }).spec), "a second start")
      assert.strictEqual(fast.state, "running")
      const p = makeChild(log, "p")
      yield* promptly(sup.startChild(p.spec), "a third start")
      yield* p.exit(crash)
      yield* waitFor(sup.recentEvents, (e) => count(e, "ready", "p") === 2, "p restarted")

      const states = (yield* promptly(sup.children)).map((c) => `${c.id}:${c.state}`)
      assert.deepStrictEqual(states, ["slow:starting", "fast:running", "p:running"])
      assert.strictEqual(yield* promptly(sup.count), 3)
      yield* promptly(sup.terminateChild("fast"), "terminateChild")
      assert.isFalse(isDone(slowStart))

      yield* TestClock.adjust(SLOW)
      const status = yield* Fiber.join(slowStart)
      assert.strictEqual(status.state, "running")
      assert.deepStrictEqual(log, ["starting:slow", "start:fast", "start:p", "stop:p", "start:p", "stop:fast", "start:slow"])
    }))

  it.effect("terminated while starting: the start is interrupted, its scope closed, the caller told why", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const sup = yield* makeDynamic({ id: "sessions" })
      const slow = makeChild(log, "slow", { restart: "temporary", startMs: SLOW })
      const starting = yield* Effect.forkChild(Effect.flip(sup.startChild(slow.spec)))
      yield* settle
      yield* promptly(sup.terminateChild("slow", ExitReason.ClosedByOperator()), "terminateChild")
      const error = yield* Fiber.join(starting)
      assert.strictEqual(error._tag, "ChildStartFailed")
      if (error._tag === "ChildStartFailed") assert.deepStrictEqual(error.reason, ExitReason.ClosedByOperator())
      assert.deepStrictEqual(slow.closes(), [ExitReason.ClosedByOperator()])
      assert.strictEqual(yield* sup.count, 0) // gone by the time its caller hears
      assert.deepStrictEqual(yield* sup.endedChild("slow"), {
        id: "slow",
        reason: ExitReason.ClosedByOperator(),
        endedAt: (yield* sup.endedChild("slow"))?.endedAt ?? -1,
      })
      const events = yield* sup.recentEvents
      assert.strictEqual(count(events, "ready", "slow"), 0)
      assert.deepStrictEqual(events.find((e) => e.kind === "exit")?.reason, ExitReason.ClosedByOperator())
      yield* TestClock.adjust(SLOW)
      yield* settle
      assert.deepStrictEqual(log, ["starting:slow", "stop:slow"]) // the start never went on
      assert.strictEqual(count(yield* sup.recentEvents, "ready"), 0)
    }))

  it.effect("the supervisor stopped while a child starts: the start is interrupted and the caller told so", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const sup = yield* makeDynamic({ id: "sessions" })
      const slow = makeChild(log, "slow", { restart: "temporary", startMs: SLOW })
      const starting = yield* Effect.forkChild(Effect.flip(sup.startChild(slow.spec)))
      yield* settle
      yield* promptly(sup.stop, "stop")
      const error = yield* Fiber.join(starting)
      assert.strictEqual(error._tag, "SupervisorStopped")
      assert.deepStrictEqual(slow.closes(), [ExitReason.Shutdown()])
      yield* TestClock.adjust(SLOW)
      yield* settle
      assert.deepStrictEqual(log, ["starting:slow", "stop:slow"])
    }))
})

describe("static: ordered starts beside the loop", () => {
  it.effect("initial pass: the next child waits for the slow one, exits are handled meanwhile", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const a = makeChild(log, "a")
      const slow = makeChild(log, "slow", { startMs: SLOW })
      const c = makeChild(log, "c")
      const making = yield* Effect.forkChild(make({ id: "sup", backoff: NO_BACKOFF, children: [a.spec, slow.spec, c.spec] }))
      yield* settle
      assert.deepStrictEqual(log, ["start:a", "starting:slow"])
      yield* a.exit(crash)
      yield* settle
      assert.deepStrictEqual(log, ["start:a", "starting:slow", "stop:a", "start:a"])
      assert.isFalse(isDone(making))
      yield* TestClock.adjust(SLOW - 1)
      yield* settle
      assert.strictEqual(c.starts(), 0)
      yield* TestClock.adjust(1)
      const sup = yield* Fiber.join(making)
      assert.deepStrictEqual(log.slice(4), ["start:slow", "start:c"])
      assert.deepStrictEqual((yield* sup.children).map((s) => s.state), ["running", "running", "running"])
    }))

  const afterCrash: Record<Exclude<Strategy, "one_for_one">, Array<string>> = {
    rest_for_one: ["stop:a", "stop:c", "stop:slow", "start:a", "starting:slow"],
    one_for_all: ["stop:a", "stop:c", "stop:slow", "stop:d", "start:d", "start:a", "starting:slow"],
  }
  for (const strategy of ["rest_for_one", "one_for_all"] as const) {
    it.effect(`${strategy}: a restart keeps declared order; the loop serves calls and exits meanwhile`, () =>
      Effect.gen(function*() {
        const log: Array<string> = []
        // d comes first, outside rest_for_one's group (one_for_all restarts it too); transient, so its Normal
        // exit below is handled without a restart.
        const d = makeChild(log, "d", { restart: "transient" })
        const [a, slow, c] = ["a", "slow", "c"].map((id) => makeChild(log, id))
        const sup = yield* make({ id: "sup", strategy, backoff: NO_BACKOFF, children: [d.spec, a!.spec, slow!.spec, c!.spec] })
        slow!.slowStarts(SLOW)
        log.length = 0
        yield* a!.exit(crash)
        yield* waitFor(sup.recentEvents, (e) => count(e, "start", "slow") === 2, "slow restarting")
        yield* settle
        assert.deepStrictEqual(log, afterCrash[strategy])
        const states = (yield* promptly(sup.children)).map((s) => s.state)
        assert.deepStrictEqual(states, ["running", "running", "starting", "restarting"])

        // Meanwhile: an operator restart and an exit, without the clock moving.
        log.length = 0
        yield* promptly(sup.restartChild("d"), "restartChild")
        yield* d.exit(ExitReason.Normal())
        yield* waitFor(sup.recentEvents, (e) => count(e, "exit", "d") === 1, "d's exit")
        assert.deepStrictEqual(log, ["stop:d", "start:d", "stop:d"])
        assert.strictEqual(c!.starts(), 1)

        yield* TestClock.adjust(SLOW - 1)
        yield* settle
        assert.strictEqual(c!.starts(), 1)
        yield* TestClock.adjust(1)
        yield* waitFor(sup.recentEvents, (e) => count(e, "ready", "c") === 2, "c restarted")
        assert.deepStrictEqual(log.slice(-2), ["start:slow", "start:c"])
        const after = (yield* sup.children).map((s) => s.state)
        assert.deepStrictEqual(after, ["stopped", "running", "running", "running"])
      }))
  }

  it.effect("terminated while starting: interrupted, scope closed, and the children after it start", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const [a, slow, c] = ["a", "slow", "c"].map((id) => makeChild(log, id))
      const sup = yield* make({ id: "sup", strategy: "rest_for_one", backoff: NO_BACKOFF, children: [a!.spec, slow!.spec, c!.spec] })
      slow!.slowStarts(SLOW)
      yield* a!.exit(crash)
      yield* waitFor(sup.recentEvents, (e) => count(e, "start", "slow") === 2)
      yield* settle
      log.length = 0
      yield* promptly(sup.terminateChild("slow", ExitReason.ClosedByOperator()), "terminateChild")
      yield* waitFor(sup.recentEvents, (e) => count(e, "ready", "c") === 2, "c started")
      assert.deepStrictEqual(log, ["stop:slow", "start:c"])
      assert.deepStrictEqual(slow!.closes().at(-1), ExitReason.ClosedByOperator())
      const [, s] = yield* sup.children
      assert.strictEqual(s?.state, "stopped")
      assert.deepStrictEqual(s?.lastExit, ExitReason.ClosedByOperator())
      yield* TestClock.adjust(SLOW)
      yield* settle
      assert.deepStrictEqual(log, ["stop:slow", "start:c"])
    }))

  it.effect("stopped while a child starts: the start is interrupted and the rest is never started", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const [a, slow, c] = ["a", "slow", "c"].map((id) => makeChild(log, id))
      const sup = yield* make({ id: "sup", strategy: "rest_for_one", backoff: NO_BACKOFF, children: [a!.spec, slow!.spec, c!.spec] })
      slow!.slowStarts(SLOW)
      yield* a!.exit(crash)
      yield* waitFor(sup.recentEvents, (e) => count(e, "start", "slow") === 2)
      yield* settle
      log.length = 0
      yield* promptly(sup.stop, "stop")
      assert.deepStrictEqual(log, ["stop:slow", "stop:a"])
      yield* TestClock.adjust(SLOW)
      yield* settle
      assert.deepStrictEqual(log, ["stop:slow", "stop:a"])
      assert.strictEqual(c!.starts(), 1)
      assert.strictEqual(count(yield* sup.recentEvents, "escalation"), 0)
    }))
})
