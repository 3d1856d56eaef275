// fiberChild: an Effect supervised as a child; and a start that hangs is ended when the supervisor stops.
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Scope } from "effect"
import { ExitReason } from "../../supervisors/exit.ts"
import { fiberChild } from "../../supervisors/fiber.ts"
import { make } from "../../supervisors/supervisor.ts"
import { count, makeChild, NO_BACKOFF, settle, waitFor } from "./harness.ts"

describe("fiberChild", () => {
  it.effect("returning is Normal, failing is Crash, and it is restarted per its type", () =>
    Effect.gen(function*() {
      let runs = 0
      const gate = yield* Deferred.make<void, string>()
      const child = fiberChild({
        id: "control",
        run: Effect.suspend(() => {
          runs++
          return runs === 1 ? Deferred.await(gate) : Effect.never
        }),
        ready: Effect.succeed({ port: 9000 }),
      })
      const sup = yield* make({ id: "root", backoff: NO_BACKOFF, children: [child] })
      assert.strictEqual((yield* sup.children)[0]?.port, 9000)
      yield* Deferred.fail(gate, "socket closed")
      const ev = yield* waitFor(sup.recentEvents, (e) => count(e, "ready", "control") === 2)
      assert.deepStrictEqual(ev.find((e) => e.kind === "exit")?.reason, ExitReason.Crash({ detail: "socket closed" }))
    }))

  it.effect("a transient fiber child that returns is not restarted", () =>
    Effect.gen(function*() {
      const sup = yield* make({ id: "root", children: [fiberChild({ id: "once", restart: "transient", run: Effect.void })] })
      const ev = yield* waitFor(sup.recentEvents, (e) => count(e, "exit", "once") === 1)
      assert.deepStrictEqual(ev.find((e) => e.kind === "exit")?.reason, ExitReason.Normal())
      yield* settle
      assert.strictEqual((yield* sup.children)[0]?.state, "stopped")
    }))
})

describe("a start that never becomes ready", () => {
  it.effect("is interrupted, and its scope closed, when the supervisor's scope closes", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const a = makeChild(log, "a")
      const hung = {
        id: "hung",
        start: Effect.gen(function*() {
          yield* Effect.addFinalizer(() => Effect.sync(() => log.push("stop:hung")))
          log.push("start:hung")
          return yield* Effect.never
        }),
      }
      const scope = yield* Scope.make()
      yield* Effect.forkChild(make({ id: "sup", children: [a.spec, hung] }).pipe(Scope.provide(scope)))
      yield* settle
      assert.deepStrictEqual(log, ["start:a", "start:hung"])
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(log, ["start:a", "start:hung", "stop:hung", "stop:a"])
    }))
})
