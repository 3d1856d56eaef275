// Restart types × exit kinds (OTP's matrix), ordered start and reverse stop, and failed starts as exits.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Scope, Exit } from "effect"
import type { Restart } from "../../supervisors/child.ts"
import { ExitReason } from "../../supervisors/exit.ts"
import { make } from "../../supervisors/supervisor.ts"
import { count, makeChild, NO_BACKOFF, settle, waitFor } from "./harness.ts"

const exits: ReadonlyArray<[string, ExitReason]> = [
  ["Normal", ExitReason.Normal()],
  ["Shutdown", ExitReason.Shutdown()],
  ["Crash", ExitReason.Crash({ detail: "boom", code: 3 })],
  ["Killed", ExitReason.Killed({ signal: "SIGKILL" })],
  ["Timeout", ExitReason.Timeout({ limit: "liveness" })],
]

const expected: Record<Restart, (r: ExitReason) => boolean> = {
  permanent: () => true,
  transient: (r) => r._tag !== "Normal" && r._tag !== "Shutdown",
  temporary: () => false,
}

describe("restart type × exit kind", () => {
  for (const restart of ["permanent", "transient", "temporary"] as const) {
    for (const [name, reason] of exits) {
      const restarts = expected[restart](reason)
      it.effect(`${restart} child, exit ${name}: ${restarts ? "restarted" : "not restarted"}`, () =>
        Effect.gen(function*() {
          const log: Array<string> = []
          const a = makeChild(log, "a", { restart })
          const sup = yield* make({ id: "sup", backoff: NO_BACKOFF, children: [a.spec] })
          yield* a.exit(reason)
          yield* waitFor(sup.recentEvents, (ev) => count(ev, "exit", "a") === 1, "exit")
          yield* settle
          assert.strictEqual(a.starts(), restarts ? 2 : 1)
          const children = yield* sup.children
          if (restart === "temporary") {
            assert.deepStrictEqual(children, [])
          } else {
            assert.strictEqual(children[0]?.state, restarts ? "running" : "stopped")
            assert.strictEqual(children[0]?.restarts, restarts ? 1 : 0)
            if (!restarts) assert.deepStrictEqual(children[0]?.lastExit, reason)
          }
        }))
    }
  }
})

describe("start and stop order", () => {
  it.effect("starts in list order, stops in reverse when the scope closes", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const kids = ["a", "b", "c"].map((id) => makeChild(log, id))
      const scope = yield* Scope.make()
      const sup = yield* make({ id: "sup", children: kids.map((k) => k.spec) }).pipe(Scope.provide(scope))
      assert.deepStrictEqual(log, ["start:a", "start:b", "start:c"])
      const states = (yield* sup.children).map((c) => c.state)
      assert.deepStrictEqual(states, ["running", "running", "running"])
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(log, ["start:a", "start:b", "start:c", "stop:c", "stop:b", "stop:a"])
      yield* sup.await
      const kinds = (yield* sup.recentEvents).map((e) => `${e.kind}:${e.child ?? "-"}`)
      assert.deepStrictEqual(kinds.slice(-4), ["stop:c", "stop:b", "stop:a", "stop:-"])
    }))

  it.effect("handle.stop stops in reverse order and is idempotent", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const kids = ["a", "b", "c"].map((id) => makeChild(log, id))
      const sup = yield* make({ id: "sup", children: kids.map((k) => k.spec) })
      yield* sup.stop
      yield* sup.stop
      assert.deepStrictEqual(log.slice(3), ["stop:c", "stop:b", "stop:a"])
      const calls = yield* Effect.flip(sup.restartChild("a"))
      assert.strictEqual(calls._tag, "SupervisorStopped")
    }))

  it.effect("a start that fails counts as an exit and is restarted per policy", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const a = makeChild(log, "a")
      const b = makeChild(log, "b")
      b.failStarts(ExitReason.Crash({ detail: "readiness probe failed" }))
      const sup = yield* make({ id: "sup", backoff: NO_BACKOFF, children: [a.spec, b.spec] })
      const ev = yield* waitFor(sup.recentEvents, (e) => count(e, "ready", "b") === 1, "b ready")
      const exit = ev.find((e) => e.kind === "exit" && e.child === "b")
      assert.deepStrictEqual(exit?.reason, ExitReason.Crash({ detail: "readiness probe failed" }))
      assert.deepStrictEqual(log, ["start:a", "fail:b", "start:b"])
      assert.strictEqual((yield* sup.children)[1]?.restarts, 1)
    }))

  it.effect("operator restartChild stops then starts, counts a restart, not against intensity", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const a = makeChild(log, "a")
      const sup = yield* make({ id: "sup", intensity: 0, children: [a.spec] })
      yield* sup.restartChild("a")
      yield* sup.restartChild("a")
      assert.deepStrictEqual(log, ["start:a", "stop:a", "start:a", "stop:a", "start:a"])
      const [status] = yield* sup.children
      assert.strictEqual(status?.restarts, 2)
      assert.strictEqual(status?.state, "running")
      const unknown = yield* Effect.flip(sup.restartChild("zz"))
      assert.strictEqual(unknown._tag, "UnknownChild")
    }))

  it.effect("terminateChild leaves a permanent child stopped until restartChild", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const a = makeChild(log, "a")
      const sup = yield* make({ id: "sup", children: [a.spec] })
      yield* sup.terminateChild("a")
      yield* settle
      assert.strictEqual((yield* sup.children)[0]?.state, "stopped")
      yield* sup.restartChild("a")
      assert.strictEqual((yield* sup.children)[0]?.state, "running")
    }))
})
