// Dynamic supervisors: start empty, startChild / terminateChild, maxChildren, restart types and intensity.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { makeDynamic } from "../../supervisors/dynamic.ts"
import { ExitReason } from "../../supervisors/exit.ts"
import { count, makeChild, NO_BACKOFF, settle, waitFor } from "./harness.ts"

const crash = ExitReason.Crash({ detail: "boom" })

describe("dynamic supervisor", () => {
  it.effect("starts empty; startChild and terminateChild", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const sup = yield* makeDynamic({ id: "sessions", backoff: NO_BACKOFF })
      assert.deepStrictEqual(yield* sup.children, [])
      const s1 = makeChild(log, "s1", { restart: "temporary", pid: 7 })
      const status = yield* sup.startChild(s1.spec)
      assert.strictEqual(status.state, "running")
      assert.strictEqual(status.pid, 7)
      yield* sup.startChild(makeChild(log, "s2", { restart: "temporary" }).spec)
      assert.strictEqual(yield* sup.count, 2)
      yield* sup.terminateChild("s1")
      assert.deepStrictEqual((yield* sup.children).map((c) => c.id), ["s2"])
      assert.deepStrictEqual(log, ["start:s1", "start:s2", "stop:s1"])
      const unknown = yield* Effect.flip(sup.terminateChild("s1"))
      assert.strictEqual(unknown._tag, "UnknownChild")
    }))

  it.effect("refuses a start past maxChildren with a tagged error naming the limit", () =>
    Effect.gen(function*() {
      const sup = yield* makeDynamic({ id: "sessions", maxChildren: 2 })
      yield* sup.startChild(makeChild([], "s1", { restart: "temporary" }).spec)
      yield* sup.startChild(makeChild([], "s2", { restart: "temporary" }).spec)
      const refused = yield* Effect.flip(sup.startChild(makeChild([], "s3", { restart: "temporary" }).spec))
      assert.strictEqual(refused._tag, "MaxChildrenReached")
      if (refused._tag === "MaxChildrenReached") {
        assert.strictEqual(refused.maxChildren, 2)
        assert.strictEqual(refused.child, "s3")
        assert.match(refused.message, /maxChildren = 2/)
      }
      yield* sup.terminateChild("s1")
      yield* sup.startChild(makeChild([], "s3", { restart: "temporary" }).spec)
    }))

  it.effect("a temporary child that exits is removed and frees its place", () =>
    Effect.gen(function*() {
      const sup = yield* makeDynamic({ id: "sessions", maxChildren: 1 })
      const s1 = makeChild([], "s1", { restart: "temporary" })
      yield* sup.startChild(s1.spec)
      yield* s1.exit(ExitReason.Timeout({ limit: "wall-clock" }))
      yield* waitFor(sup.recentEvents, (e) => count(e, "exit", "s1") === 1)
      yield* settle
      assert.strictEqual(yield* sup.count, 0)
      assert.strictEqual(s1.starts(), 1)
      yield* sup.startChild(makeChild([], "s2", { restart: "temporary" }).spec)
    }))

  it.effect("a failed start is refused with its reason and not kept", () =>
    Effect.gen(function*() {
      const sup = yield* makeDynamic({ id: "sessions" })
      const s1 = makeChild([], "s1")
      s1.failStarts(ExitReason.OutOfMemory())
      const failed = yield* Effect.flip(sup.startChild(s1.spec))
      assert.strictEqual(failed._tag, "ChildStartFailed")
      assert.strictEqual(yield* sup.count, 0)
      const ev = yield* sup.recentEvents
      assert.strictEqual(count(ev, "exit", "s1"), 1)
    }))

  it.effect("honours permanent restarts, duplicate ids and intensity", () =>
    Effect.gen(function*() {
      const sup = yield* makeDynamic({ id: "sessions", intensity: 1, backoff: NO_BACKOFF })
      const p = makeChild([], "p")
      yield* sup.startChild(p.spec)
      const dup = yield* Effect.flip(sup.startChild(makeChild([], "p").spec))
      assert.strictEqual(dup._tag, "InvalidSpec")
      yield* p.exit(crash)
      yield* waitFor(sup.recentEvents, (e) => count(e, "ready", "p") === 2)
      yield* p.exit(crash)
      const error = yield* Effect.flip(sup.await)
      assert.strictEqual(error._tag, "Escalation")
      const stopped = yield* Effect.flip(sup.startChild(makeChild([], "q").spec))
      assert.strictEqual(stopped._tag, "SupervisorStopped")
    }))
})
