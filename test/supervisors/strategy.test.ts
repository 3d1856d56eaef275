// Strategies (one_for_one, one_for_all, rest_for_one) × escalation, and the sliding intensity window.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { TestClock } from "effect/testing"
import type { Strategy } from "../../supervisors/declaration.ts"
import { ExitReason } from "../../supervisors/exit.ts"
import { make } from "../../supervisors/supervisor.ts"
import { count, makeChild, NO_BACKOFF, settle, waitFor } from "./harness.ts"

const crash = ExitReason.Crash({ detail: "boom" })

const after: Record<Strategy, Array<string>> = {
  one_for_one: ["stop:b", "start:b"],
  one_for_all: ["stop:b", "stop:c", "stop:a", "start:a", "start:b", "start:c"],
  rest_for_one: ["stop:b", "stop:c", "start:b", "start:c"],
}

describe("strategies", () => {
  for (const strategy of ["one_for_one", "one_for_all", "rest_for_one"] as const) {
    it.effect(`${strategy}: b crashes`, () =>
      Effect.gen(function*() {
        const log: Array<string> = []
        const [a, b, c] = ["a", "b", "c"].map((id) => makeChild(log, id))
        const sup = yield* make({ id: "sup", strategy, backoff: NO_BACKOFF, children: [a!.spec, b!.spec, c!.spec] })
        log.length = 0
        yield* b!.exit(crash)
        yield* waitFor(sup.recentEvents, (e) => count(e, "ready", "b") === 2, "b restarted")
        yield* settle
        // b's own scope closes first (it already exited), then the siblings in reverse, then starts in order.
        assert.deepStrictEqual(log, after[strategy])
        const states = (yield* sup.children).map((s) => s.state)
        assert.deepStrictEqual(states, ["running", "running", "running"])
      }))

    it.effect(`${strategy}: escalates past intensity, stopping all in reverse order`, () =>
      Effect.gen(function*() {
        const log: Array<string> = []
        const [a, b, c] = ["a", "b", "c"].map((id) => makeChild(log, id))
        const sup = yield* make({
          id: "sup",
          strategy,
          intensity: 2,
          period: 5,
          backoff: NO_BACKOFF,
          children: [a!.spec, b!.spec, c!.spec],
        })
        for (let i = 1; i <= 2; i++) {
          yield* b!.exit(crash)
          yield* waitFor(sup.recentEvents, (e) => count(e, "ready", "b") === i + 1, `restart ${i}`)
        }
        yield* settle // the siblings after b start once b is ready
        log.length = 0
        yield* b!.exit(crash)
        const result = yield* Effect.exit(sup.await)
        assert.isTrue(Exit.isFailure(result))
        const error = yield* Effect.flip(sup.await)
        assert.strictEqual(error._tag, "Escalation")
        assert.strictEqual(error.supervisor, "sup")
        assert.strictEqual(error.child, "b")
        assert.strictEqual(error.restarts, 3)
        assert.strictEqual(error.period, 5)
        assert.deepStrictEqual(error.reason, crash)
        assert.deepStrictEqual(log, ["stop:b", "stop:c", "stop:a"])
        const ev = yield* sup.recentEvents
        assert.strictEqual(count(ev, "escalation"), 1)
        assert.match(error.message, /3 restarts in 5 s exceed intensity 2/)
        const stopped = yield* Effect.flip(sup.restartChild("a"))
        assert.strictEqual(stopped._tag, "SupervisorStopped")
      }))
  }

  it.effect("rest_for_one: the last child crashing restarts only itself", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const [a, b] = ["a", "b"].map((id) => makeChild(log, id))
      const sup = yield* make({ id: "sup", strategy: "rest_for_one", backoff: NO_BACKOFF, children: [a!.spec, b!.spec] })
      log.length = 0
      yield* b!.exit(crash)
      yield* waitFor(sup.recentEvents, (e) => count(e, "ready", "b") === 2)
      assert.deepStrictEqual(log, ["stop:b", "start:b"])
    }))

  it.effect("one_for_all: a temporary sibling is stopped and not restarted", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const a = makeChild(log, "a")
      const t = makeChild(log, "t", { restart: "temporary" })
      const sup = yield* make({ id: "sup", strategy: "one_for_all", backoff: NO_BACKOFF, children: [a.spec, t.spec] })
      yield* a.exit(crash)
      yield* waitFor(sup.recentEvents, (e) => count(e, "ready", "a") === 2)
      assert.deepStrictEqual((yield* sup.children).map((c) => c.id), ["a"])
      assert.strictEqual(t.starts(), 1)
    }))

  it.effect("a transient child exiting Normal triggers no strategy", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const a = makeChild(log, "a")
      const t = makeChild(log, "t", { restart: "transient" })
      const sup = yield* make({ id: "sup", strategy: "one_for_all", backoff: NO_BACKOFF, children: [a.spec, t.spec] })
      log.length = 0
      yield* t.exit(ExitReason.Normal())
      yield* waitFor(sup.recentEvents, (e) => count(e, "exit", "t") === 1)
      yield* settle
      assert.deepStrictEqual(log, ["stop:t"])
    }))
})

describe("intensity window", () => {
  it.effect("restarts spread over more than `period` never escalate", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const a = makeChild(log, "a")
      const sup = yield* make({ id: "sup", intensity: 2, period: 10, backoff: NO_BACKOFF, children: [a.spec] })
      for (let i = 1; i <= 10; i++) {
        yield* TestClock.adjust("6 seconds") // restarts 6 s apart: never 3 within 10 s
        yield* a.exit(crash)
        yield* waitFor(sup.recentEvents, (e) => count(e, "ready", "a") === i + 1, `restart ${i}`)
      }
      const ev = yield* sup.recentEvents
      assert.strictEqual(count(ev, "escalation"), 0)
      assert.strictEqual((yield* sup.children)[0]?.restarts, 10)
    }))

  it.effect("the same restarts packed into `period` escalate", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const a = makeChild(log, "a")
      const sup = yield* make({ id: "sup", intensity: 2, period: 10, backoff: NO_BACKOFF, children: [a.spec] })
      for (let i = 1; i <= 2; i++) {
        yield* TestClock.adjust("3 seconds")
        yield* a.exit(crash)
        yield* waitFor(sup.recentEvents, (e) => count(e, "ready", "a") === i + 1)
      }
      yield* TestClock.adjust("3 seconds")
      yield* a.exit(crash)
      const error = yield* Effect.flip(sup.await)
      assert.strictEqual(error._tag, "Escalation")
    }))

  it.effect("intensity 0: the first restart escalates", () =>
    Effect.gen(function*() {
      const a = makeChild([], "a")
      const sup = yield* make({ id: "sup", intensity: 0, children: [a.spec] })
      yield* a.exit(crash)
      const error = yield* Effect.flip(sup.await)
      assert.strictEqual(error.restarts, 1)
    }))
})
