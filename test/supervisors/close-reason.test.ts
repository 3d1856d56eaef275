// A child learns why it is being stopped: the engine closes its Scope with Exit.succeed(the reason it records),
// read back with closeReason. Matrix: who ended it (itself, its failed start, terminateChild with and without a
// reason, a sibling's restart, an operator restart, the supervisor's stop) × static and dynamic.
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit } from "effect"
import { TestClock } from "effect/testing"
import type { ChildSpec } from "../../supervisors/child.ts"
import { makeDynamic } from "../../supervisors/dynamic.ts"
import { ExitReason } from "../../supervisors/exit.ts"
import { closeReason } from "../../supervisors/slot.ts"
import { make } from "../../supervisors/supervisor.ts"
import { count, makeChild, NO_BACKOFF, settle, waitFor } from "./harness.ts"

const crash = ExitReason.Crash({ detail: "boom" })

describe("closeReason", () => {
  it("reads the ExitReason a scope was closed with, Shutdown for anything else", () => {
    assert.deepStrictEqual(closeReason(Exit.succeed(ExitReason.ClosedByOperator())), ExitReason.ClosedByOperator())
    assert.deepStrictEqual(closeReason(Exit.succeed(crash)), crash)
    assert.deepStrictEqual(closeReason(Exit.void), ExitReason.Shutdown())
    assert.deepStrictEqual(closeReason(Exit.succeed({ _tag: "NotAReason" })), ExitReason.Shutdown())
    assert.deepStrictEqual(closeReason(Exit.succeed("Normal")), ExitReason.Shutdown())
    assert.deepStrictEqual(closeReason(Exit.fail(ExitReason.Normal())), ExitReason.Shutdown())
    assert.deepStrictEqual(closeReason(Exit.failCause(Cause.interrupt())), ExitReason.Shutdown())
  })
})

/** A child whose start registers a finalizer, then fails with `reason`. */
const failingStart = (id: string, seen: Array<ExitReason>, reason: ExitReason): ChildSpec => ({
  id,
  restart: "temporary",
  start: Effect.gen(function*() {
    yield* Effect.addFinalizer((exit) => Effect.sync(() => seen.push(closeReason(exit))))
    return yield* Effect.fail(reason)
  }),
})

describe("dynamic: the reason a child's scope is closed with is the one recorded", () => {
  const cases: ReadonlyArray<[string, ExitReason | undefined, ExitReason]> = [
    ["terminateChild(id)", undefined, ExitReason.Shutdown()],
    ["terminateChild(id, ClosedByUser)", ExitReason.ClosedByUser(), ExitReason.ClosedByUser()],
    ["terminateChild(id, ClosedByOperator)", ExitReason.ClosedByOperator(), ExitReason.ClosedByOperator()],
  ]
  for (const [name, given, recorded] of cases) {
    it.effect(`${name}: scope, exit event (after the scope closed) and ended record say ${recorded._tag}`, () =>
      Effect.gen(function*() {
        const sup = yield* makeDynamic({ id: "sessions" })
        const s1 = makeChild([], "s1", { restart: "temporary", stopMs: 1_000 })
        yield* sup.startChild(s1.spec)
        const t0 = (yield* sup.recentEvents).at(-1)?.ts ?? 0
        const terminating = Effect.forkChild(given === undefined ? sup.terminateChild("s1") : sup.terminateChild("s1", given))
        yield* Effect.andThen(terminating, settle)
        yield* TestClock.adjust("1 second")
        yield* waitFor(sup.recentEvents, (e) => count(e, "exit", "s1") === 1)
        assert.deepStrictEqual(s1.closes(), [recorded])
        const exit = (yield* sup.recentEvents).find((e) => e.kind === "exit")
        assert.deepStrictEqual(exit?.reason, recorded)
        assert.strictEqual(exit?.ts, t0 + 1_000) // once the child's finalizer had finished
        assert.deepStrictEqual((yield* sup.endedChild("s1"))?.reason, recorded)
      }))
  }

  it.effect("its own exit", () =>
    Effect.gen(function*() {
      const sup = yield* makeDynamic({ id: "sessions" })
      const s1 = makeChild([], "s1", { restart: "temporary" })
      yield* sup.startChild(s1.spec)
      yield* s1.exit(ExitReason.Timeout({ limit: "wall" }))
      yield* waitFor(sup.recentEvents, (e) => count(e, "exit", "s1") === 1)
      yield* settle
      assert.deepStrictEqual(s1.closes(), [ExitReason.Timeout({ limit: "wall" })])
      assert.deepStrictEqual((yield* sup.endedChild("s1"))?.reason, ExitReason.Timeout({ limit: "wall" }))
    }))

  it.effect("its failed start", () =>
    Effect.gen(function*() {
      const sup = yield* makeDynamic({ id: "sessions" })
      const seen: Array<ExitReason> = []
      const error = yield* Effect.flip(sup.startChild(failingStart("s1", seen, ExitReason.OutOfMemory())))
      assert.strictEqual(error._tag, "ChildStartFailed")
      assert.deepStrictEqual(seen, [ExitReason.OutOfMemory()])
      assert.deepStrictEqual((yield* sup.endedChild("s1"))?.reason, ExitReason.OutOfMemory())
    }))

  it.effect("a permanent child's crash closes its scope with the crash, then it is restarted", () =>
    Effect.gen(function*() {
      const sup = yield* makeDynamic({ id: "sessions", backoff: NO_BACKOFF })
      const p = makeChild([], "p")
      yield* sup.startChild(p.spec)
      yield* p.exit(crash)
      yield* waitFor(sup.recentEvents, (e) => count(e, "ready", "p") === 2)
      assert.deepStrictEqual(p.closes(), [crash])
      assert.strictEqual(yield* sup.endedChild("p"), undefined) // restarted, not ended
      yield* sup.terminateChild("p", ExitReason.ClosedByOperator())
      assert.deepStrictEqual(p.closes(), [crash, ExitReason.ClosedByOperator()])
    }))
})

describe("static: the reason a child's scope is closed with", () => {
  it.effect("terminateChild(id, reason) is its lastExit and its exit event", () =>
    Effect.gen(function*() {
      const a = makeChild([], "a")
      const sup = yield* make({ id: "sup", children: [a.spec] })
      yield* sup.terminateChild("a", ExitReason.ClosedByOperator())
      assert.deepStrictEqual(a.closes(), [ExitReason.ClosedByOperator()])
      const [status] = yield* sup.children
      assert.strictEqual(status?.state, "stopped")
      assert.deepStrictEqual(status?.lastExit, ExitReason.ClosedByOperator())
      const exit = (yield* sup.recentEvents).find((e) => e.kind === "exit")
      assert.deepStrictEqual(exit?.reason, ExitReason.ClosedByOperator())
    }))

  it.effect("its own exit, a sibling's restart, an operator restart and the supervisor's stop", () =>
    Effect.gen(function*() {
      const [a, b] = ["a", "b"].map((id) => makeChild([], id))
      const sup = yield* make({ id: "sup", strategy: "one_for_all", backoff: NO_BACKOFF, children: [a!.spec, b!.spec] })
      yield* b!.exit(crash)
      yield* waitFor(sup.recentEvents, (e) => count(e, "ready", "b") === 2)
      assert.deepStrictEqual(b!.closes(), [crash])
      assert.deepStrictEqual(a!.closes(), [ExitReason.Shutdown()])
      yield* sup.restartChild("a")
      assert.deepStrictEqual(a!.closes(), [ExitReason.Shutdown(), ExitReason.Shutdown()])
      yield* sup.stop
      assert.deepStrictEqual(b!.closes(), [crash, ExitReason.Shutdown()])
    }))

  it.effect("its failed start", () =>
    Effect.gen(function*() {
      const seen: Array<ExitReason> = []
      const sup = yield* make({ id: "sup", children: [failingStart("t", seen, ExitReason.Timeout({ limit: "readiness" }))] })
      yield* waitFor(sup.recentEvents, (e) => count(e, "exit", "t") === 1)
      assert.deepStrictEqual(seen, [ExitReason.Timeout({ limit: "readiness" })])
    }))
})
