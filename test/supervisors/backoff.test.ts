// Backoff between restarts: grows exponentially, is capped, resets after stable uptime; all on the TestClock.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { makeBackoff } from "../../supervisors/backoff.ts"
import { ExitReason } from "../../supervisors/exit.ts"
import { make } from "../../supervisors/supervisor.ts"
import { count, makeChild, settle, waitFor } from "./harness.ts"

const crash = ExitReason.Crash({ detail: "boom" })
const policy = { initialMs: 100, factor: 2, maxMs: 5_000, resetAfterMs: 10_000 }

describe("backoff policy", () => {
  it.effect("doubles from 100 ms, caps at 5 s, resets after 10 s of uptime", () =>
    Effect.gen(function*() {
      const b = makeBackoff(policy)
      const delays: Array<number> = []
      for (let i = 0; i < 9; i++) delays.push((yield* b.next(0)).delayMs)
      assert.deepStrictEqual(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000])
      assert.deepStrictEqual(yield* b.next(9_999), { attempt: 10, delayMs: 5000 })
      assert.deepStrictEqual(yield* b.next(10_000), { attempt: 1, delayMs: 100 })
      assert.deepStrictEqual(yield* b.next(0), { attempt: 2, delayMs: 200 })
    }))
})

describe("backoff in a supervisor", () => {
  it.effect("waits the backoff before each restart, capped, and resets after stable uptime", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const a = makeChild(log, "a")
      const sup = yield* make({
        id: "sup",
        intensity: 100,
        period: 1,
        backoff: { initial: "100 millis", max: "1 second", resetAfter: "10 seconds" },
        children: [a.spec],
      })
      const expected = [100, 200, 400, 800, 1000, 1000]
      for (const [i, delay] of expected.entries()) {
        yield* a.exit(crash)
        const ev = yield* waitFor(sup.recentEvents, (e) => count(e, "restart", "a") === i + 1)
        assert.strictEqual(ev.at(-1)?.delayMs, delay)
        assert.strictEqual(ev.at(-1)?.attempt, i + 1)
        yield* TestClock.adjust(delay - 1)
        yield* settle
        assert.strictEqual(a.starts(), i + 1, `not restarted before ${delay} ms`)
        yield* TestClock.adjust(1)
        yield* waitFor(sup.recentEvents, (e) => count(e, "ready", "a") === i + 2)
      }
      // Up for 10 s: the next crash starts over at 100 ms.
      yield* TestClock.adjust("10 seconds")
      yield* a.exit(crash)
      const ev = yield* waitFor(sup.recentEvents, (e) => count(e, "restart", "a") === expected.length + 1)
      assert.strictEqual(ev.at(-1)?.delayMs, 100)
      assert.strictEqual(ev.at(-1)?.attempt, 1)
      const [status] = yield* sup.children
      assert.strictEqual(status?.state, "restarting")
    }))

  it.effect("a pending restart is cancelled when the supervisor stops", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const a = makeChild(log, "a")
      const sup = yield* make({ id: "sup", backoff: { initial: "1 second" }, children: [a.spec] })
      yield* a.exit(crash)
      yield* waitFor(sup.recentEvents, (e) => count(e, "restart", "a") === 1)
      yield* sup.stop
      yield* TestClock.adjust("2 seconds")
      yield* settle
      assert.strictEqual(a.starts(), 1)
    }))
})
