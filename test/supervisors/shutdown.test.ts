// Stopping a fiber child honours `shutdown`: "brutal" does not wait, ms waits at most that long, "infinity" waits.
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Result } from "effect"
import { TestClock } from "effect/testing"
import type { ChildSpec, Shutdown } from "../../supervisors/child.ts"
import { SHUTDOWN_GRACE_MS } from "../../supervisors/slot.ts"
import { make } from "../../supervisors/supervisor.ts"
import { count, NO_BACKOFF, settle, waitFor } from "./harness.ts"
import { ExitReason } from "../../supervisors/exit.ts"

/** A child whose scope takes 10 s to close (a slow finalizer). shutdown 1000 ms: the supervisor gives up at 1 s + grace. */
const slowToStop = (log: Array<string>, shutdown: Shutdown): ChildSpec => ({
  id: "slow",
  shutdown,
  start: Effect.gen(function*() {
    yield* Effect.addFinalizer(() => Effect.andThen(Effect.sleep("10 seconds"), Effect.sync(() => log.push("closed"))))
    return { exit: Effect.never }
  }),
})

const stopTakes = (shutdown: Shutdown) =>
  Effect.gen(function*() {
    const log: Array<string> = []
    const sup = yield* make({ id: "sup", children: [slowToStop(log, shutdown)] })
    const stopping = yield* Effect.forkChild(sup.terminateChild("slow"))
    yield* settle
    const instant = stopping.pollUnsafe() !== undefined
    yield* TestClock.adjust(999 + SHUTDOWN_GRACE_MS)
    yield* settle
    const before1s = stopping.pollUnsafe() !== undefined
    yield* TestClock.adjust("1 millis")
    yield* settle
    const at1s = stopping.pollUnsafe() !== undefined
    yield* TestClock.adjust("10 seconds")
    yield* Fiber.join(stopping)
    return { instant, before1s, at1s, log }
  })

describe("shutdown", () => {
  it.effect(`"brutal" does not wait for the child's scope to close`, () =>
    Effect.gen(function*() {
      const r = yield* stopTakes("brutal")
      assert.isTrue(r.instant)
    }))

  it.effect("a number of ms waits at most that long (plus the kill grace)", () =>
    Effect.gen(function*() {
      const r = yield* stopTakes(1000)
      assert.deepStrictEqual([r.instant, r.before1s, r.at1s], [false, false, true])
      assert.deepStrictEqual(r.log, ["closed"]) // the close still finishes in the background
    }))

  it.effect(`"infinity" waits for the scope to close`, () =>
    Effect.gen(function*() {
      const r = yield* stopTakes("infinity")
      assert.deepStrictEqual([r.instant, r.before1s, r.at1s], [false, false, false])
      assert.deepStrictEqual(r.log, ["closed"])
    }))
})

describe("stopping a supervisor while a child restarts", () => {
  it.effect("an interrupted restart is no crash: nothing is counted, restarted or escalated", () =>
    Effect.gen(function*() {
      let starts = 0
      const crashed = yield* Deferred.make<ExitReason>()
      // The first life crashes on request; every later start hangs in readiness until it is interrupted.
      const flaky: ChildSpec = {
        id: "flaky",
        start: Effect.suspend(() => (++starts === 1 ? Effect.succeed({ exit: Deferred.await(crashed) }) : Effect.never)),
      }
      const sup = yield* make({ id: "sup", intensity: 1, backoff: NO_BACKOFF, children: [flaky] })
      yield* Deferred.succeed(crashed, ExitReason.Crash({ detail: "boom" }))
      yield* waitFor(sup.recentEvents, (e) => count(e, "start", "flaky") === 2)
      yield* sup.stop
      const events = yield* sup.recentEvents
      assert.strictEqual(count(events, "escalation"), 0)
      assert.strictEqual(starts, 2)
      assert.isTrue(Result.isSuccess(yield* Effect.result(sup.await)))
    }))
})
