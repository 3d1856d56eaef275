// Caps of a dynamic supervisor: maxChildren and maxChildrenPerKey, with children still starting counted
// against both, and the key shown in each child's status.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { makeDynamic } from "../../supervisors/dynamic.ts"
import { ExitReason } from "../../supervisors/exit.ts"
import { count, makeChild, promptly, settle, waitFor } from "./harness.ts"

const session = (id: string, startMs = 0) => makeChild([], id, { restart: "temporary", startMs }).spec

describe("maxChildrenPerKey", () => {
  it.effect("refuses a start past the cap for its key, with a tagged error naming the key and the cap", () =>
    Effect.gen(function*() {
      const sup = yield* makeDynamic({ id: "sessions", maxChildrenPerKey: 2 })
      const first = yield* sup.startChild(session("a1"), { key: "ada" })
      assert.strictEqual(first.key, "ada")
      yield* sup.startChild(session("a2"), { key: "ada" })
      const refused = yield* Effect.flip(sup.startChild(session("a3"), { key: "ada" }))
      assert.strictEqual(refused._tag, "MaxChildrenPerKeyReached")
      if (refused._tag === "MaxChildrenPerKeyReached") {
        assert.deepStrictEqual([refused.supervisor, refused.child, refused.key, refused.maxChildrenPerKey], ["sessions", "a3", "ada", 2])
        assert.match(refused.message, /key "ada" already has maxChildrenPerKey = 2 children/)
      }
      // Other keys, and children without a key, are not held back.
      yield* sup.startChild(session("b1"), { key: "bob" })
      yield* sup.startChild(session("anon"))
      const keys = (yield* sup.children).map((c) => [c.id, c.key])
      assert.deepStrictEqual(keys, [["a1", "ada"], ["a2", "ada"], ["b1", "bob"], ["anon", undefined]])
      assert.isFalse("key" in ((yield* sup.children)[3] ?? {}))
      // An ended child frees its key's place.
      yield* sup.terminateChild("a1")
      yield* sup.startChild(session("a3"), { key: "ada" })
    }))

  it.effect("children still starting count: two concurrent starts at cap - 1, one is refused", () =>
    Effect.gen(function*() {
      const sup = yield* makeDynamic({ id: "sessions", maxChildrenPerKey: 2 })
      yield* sup.startChild(session("a1"), { key: "ada" })
      const one = yield* Effect.forkChild(Effect.result(sup.startChild(session("a2", 10_000), { key: "ada" })))
      const two = yield* Effect.forkChild(Effect.result(sup.startChild(session("a3", 10_000), { key: "ada" })))
      yield* settle
      const refused = yield* Fiber.join(two)
      assert.isTrue(refused._tag === "Failure" && refused.failure._tag === "MaxChildrenPerKeyReached")
      const states = (yield* sup.children).map((c) => `${c.id}:${c.state}`)
      assert.deepStrictEqual(states, ["a1:running", "a2:starting"])
      yield* TestClock.adjust("10 seconds")
      const started = yield* Fiber.join(one)
      assert.isTrue(started._tag === "Success" && started.success.state === "running")
    }))

  it.effect("a child whose start failed frees its key's place", () =>
    Effect.gen(function*() {
      const sup = yield* makeDynamic({ id: "sessions", maxChildrenPerKey: 1 })
      const bad = makeChild([], "a1", { restart: "temporary" })
      bad.failStarts(ExitReason.Crash({ detail: "no kernel" }))
      yield* Effect.flip(sup.startChild(bad.spec, { key: "ada" }))
      yield* sup.startChild(session("a2"), { key: "ada" })
    }))

  it.effect("an exit frees its key's place once the child's scope has closed", () =>
    Effect.gen(function*() {
      const sup = yield* makeDynamic({ id: "sessions", maxChildrenPerKey: 1 })
      const a1 = makeChild([], "a1", { restart: "temporary" })
      yield* sup.startChild(a1.spec, { key: "ada" })
      yield* a1.exit(ExitReason.ClosedByUser())
      yield* waitFor(sup.recentEvents, (e) => count(e, "exit", "a1") === 1)
      yield* promptly(sup.startChild(session("a2"), { key: "ada" }))
    }))

  it.effect("a bad key is refused naming the option", () =>
    Effect.gen(function*() {
      const sup = yield* makeDynamic({ id: "sessions" })
      const e = yield* Effect.flip(sup.startChild(session("a1"), { key: "" }))
      assert.strictEqual(e._tag, "InvalidSpec")
      if (e._tag === "InvalidSpec") assert.strictEqual(e.field, "options.key")
    }))
})

describe("maxChildren counts starting children", () => {
  it.effect("a start while another is still starting at maxChildren - 1 is refused", () =>
    Effect.gen(function*() {
      const sup = yield* makeDynamic({ id: "sessions", maxChildren: 2 })
      yield* sup.startChild(session("s1"))
      const slow = yield* Effect.forkChild(sup.startChild(session("s2", 5_000)))
      yield* settle
      const refused = yield* Effect.flip(promptly(sup.startChild(session("s3"))))
      assert.strictEqual(refused._tag, "MaxChildrenReached")
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(slow)
      assert.strictEqual(yield* sup.count, 2)
    }))
})
