// A session's limits on TestClock: wall, idle (never while computing), exec, and what its cgroup reports.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { ExitReason } from "../../supervisors/exit.ts"
import { Activity, cgroupLimits, timeLimits } from "../../src/worker/limits.ts"

const limits = { wall: 100, idle: 10, exec: 30, memory: 512, cpu: 5 }

/** Runs the watcher in the background and reports whether (and with what) it has ended. */
const watch = (effect: Effect.Effect<ExitReason>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(effect)
    yield* Effect.yieldNow
    return { poll: Effect.map(Fiber.await(fiber).pipe(Effect.timeoutOption(0)), (o) => (o._tag === "Some" && o.value._tag === "Success" ? o.value.value : undefined)), fiber }
  })

describe("session time limits", () => {
  it.effect("an idle session ends at its idle limit, counted from its last activity", () =>
    Effect.gen(function*() {
      const activity = yield* Activity.make
      const w = yield* watch(timeLimits(activity, limits, 0))
      yield* TestClock.adjust("6 seconds")
      activity.touch()
      yield* TestClock.adjust("9 seconds")
      assert.isUndefined(yield* w.poll, "activity at 6 s moved the idle deadline to 16 s")
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* w.poll, ExitReason.Timeout({ limit: "idle" }))
    }))

  it.effect("a computing session is never idle; its execution ends at the exec limit", () =>
    Effect.gen(function*() {
      const activity = yield* Activity.make
      const w = yield* watch(timeLimits(activity, limits, 0))
      yield* TestClock.adjust("5 seconds")
      activity.busy()
      yield* TestClock.adjust("29 seconds")
      assert.isUndefined(yield* w.poll, "34 s in, 29 s of computing: past idle, short of exec")
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* w.poll, ExitReason.Timeout({ limit: "exec" }))
    }))

  it.effect("an execution that finishes in time leaves the session idle from then on", () =>
    Effect.gen(function*() {
      const activity = yield* Activity.make
      const w = yield* watch(timeLimits(activity, limits, 0))
      activity.busy()
      yield* TestClock.adjust("20 seconds")
      activity.idle()
      yield* TestClock.adjust("9 seconds")
      assert.isUndefined(yield* w.poll)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* w.poll, ExitReason.Timeout({ limit: "idle" }))
    }))

  it.effect("the wall limit ends even a busy session, counted from its start", () =>
    Effect.gen(function*() {
      const activity = yield* Activity.make
      const w = yield* watch(timeLimits(activity, { ...limits, exec: 1000, idle: 1000 }, 0))
      activity.busy()
      yield* TestClock.adjust("99 seconds")
      assert.isUndefined(yield* w.poll)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* w.poll, ExitReason.Timeout({ limit: "wall" }))
    }))
})

describe("session cgroup limits", () => {
  it.effect("an OOM kill anywhere in the cgroup is OutOfMemory at the next check", () =>
    Effect.gen(function*() {
      let oom = 0
      const w = yield* watch(cgroupLimits({ oomKills: () => oom, cpuSeconds: () => 0 }, limits))
      yield* TestClock.adjust("1 second")
      assert.isUndefined(yield* w.poll)
      oom = 1
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* w.poll, ExitReason.OutOfMemory())
    }))

  it.effect("CPU seconds past the limit, counted from the session's start, are CpuLimit", () =>
    Effect.gen(function*() {
      let cpu = 2 // the pooled kernel's own, before the session
      const w = yield* watch(cgroupLimits({ oomKills: () => 0, cpuSeconds: () => cpu }, limits))
      cpu = 7
      yield* TestClock.adjust("1 second")
      assert.isUndefined(yield* w.poll, "5 s used is the limit, not past it")
      cpu = 7.5
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* w.poll, ExitReason.CpuLimit())
    }))

  it.effect("without CPU accounting only the OOM count is watched", () =>
    Effect.gen(function*() {
      const w = yield* watch(cgroupLimits({ oomKills: () => 0, cpuSeconds: () => undefined }, limits))
      yield* TestClock.adjust("1 hour")
      assert.isUndefined(yield* w.poll)
      yield* Fiber.interrupt(w.fiber)
    }))
})
