// Records of a dynamic supervisor's recently ended children: why and when each ended, newest last, kept for
// `keepEnded` of Clock time and at most `maxEnded`, pruned on reads and exits (no timer runs).
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect } from "effect"
import { TestClock } from "effect/testing"
import { makeDynamic } from "../../supervisors/dynamic.ts"
import { ExitReason } from "../../supervisors/exit.ts"
import { count, makeChild, NO_BACKOFF, waitFor } from "./harness.ts"

describe("ended children", () => {
  it.effect("records id, key, reason, startedAt and endedAt, newest last; endedChild finds one", () =>
    Effect.gen(function*() {
      const sup = yield* makeDynamic({ id: "sessions" })
      const s1 = makeChild([], "s1", { restart: "temporary" })
      const t0 = yield* Clock.currentTimeMillis
      yield* sup.startChild(s1.spec, { key: "ada" })
      yield* sup.startChild(makeChild([], "s2", { restart: "temporary" }).spec)
      yield* TestClock.adjust("5 seconds")
      yield* s1.exit(ExitReason.ClosedByUser())
      yield* waitFor(sup.recentEvents, (e) => count(e, "exit", "s1") === 1)
      yield* TestClock.adjust("1 second")
      yield* sup.terminateChild("s2", ExitReason.ClosedByOperator())
      assert.deepStrictEqual(yield* sup.ended, [
        { id: "s1", key: "ada", reason: ExitReason.ClosedByUser(), startedAt: t0, endedAt: t0 + 5_000 },
        { id: "s2", reason: ExitReason.ClosedByOperator(), startedAt: t0, endedAt: t0 + 6_000 },
      ])
      assert.deepStrictEqual((yield* sup.endedChild("s2"))?.reason, ExitReason.ClosedByOperator())
      assert.strictEqual(yield* sup.endedChild("nobody"), undefined)
    }))

  it.effect("a child whose start failed is recorded, without startedAt", () =>
    Effect.gen(function*() {
      const sup = yield* makeDynamic({ id: "sessions" })
      const s1 = makeChild([], "s1", { restart: "temporary" })
      s1.failStarts(ExitReason.OutOfMemory())
      yield* Effect.flip(sup.startChild(s1.spec, { key: "ada" }))
      const [record] = yield* sup.ended
      assert.deepStrictEqual(record, { id: "s1", key: "ada", reason: ExitReason.OutOfMemory(), endedAt: record?.endedAt ?? -1 })
      assert.isFalse("startedAt" in (record ?? {}))
    }))

  it.effect("records expire after keepEnded of Clock time, pruned when read", () =>
    Effect.gen(function*() {
      const sup = yield* makeDynamic({ id: "sessions", keepEnded: "10 seconds" })
      yield* sup.startChild(makeChild([], "s1", { restart: "temporary" }).spec)
      yield* sup.terminateChild("s1")
      yield* TestClock.adjust("5 seconds")
      yield* sup.startChild(makeChild([], "s2", { restart: "temporary" }).spec)
      yield* sup.terminateChild("s2")
      yield* TestClock.adjust(4_999)
      assert.deepStrictEqual((yield* sup.ended).map((e) => e.id), ["s1", "s2"])
      yield* TestClock.adjust(1)
      assert.deepStrictEqual((yield* sup.ended).map((e) => e.id), ["s2"])
      assert.strictEqual(yield* sup.endedChild("s1"), undefined)
      yield* TestClock.adjust("5 seconds")
      assert.deepStrictEqual(yield* sup.ended, [])
    }))

  it.effect("at most maxEnded records, the oldest dropped first", () =>
    Effect.gen(function*() {
      const sup = yield* makeDynamic({ id: "sessions", maxEnded: 3 })
      for (const id of ["s1", "s2", "s3", "s4", "s5"]) {
        yield* sup.startChild(makeChild([], id, { restart: "temporary" }).spec)
        yield* sup.terminateChild(id)
      }
      assert.deepStrictEqual((yield* sup.ended).map((e) => e.id), ["s3", "s4", "s5"])
    }))

  it.effect("an id that ends again keeps only its latest record, moved to the end", () =>
    Effect.gen(function*() {
      const sup = yield* makeDynamic({ id: "sessions" })
      for (const id of ["s1", "s2", "s1"]) {
        yield* sup.startChild(makeChild([], id, { restart: "temporary" }).spec)
        yield* sup.terminateChild(id, id === "s1" ? ExitReason.ClosedByUser() : ExitReason.Shutdown())
      }
      assert.deepStrictEqual((yield* sup.ended).map((e) => e.id), ["s2", "s1"])
    }))

  it.effect("a permanent child restarted after a crash has not ended; a transient one ending Normal has", () =>
    Effect.gen(function*() {
      const sup = yield* makeDynamic({ id: "sessions", backoff: NO_BACKOFF })
      const p = makeChild([], "p")
      const t = makeChild([], "t", { restart: "transient" })
      yield* sup.startChild(p.spec)
      yield* sup.startChild(t.spec)
      yield* p.exit(ExitReason.Crash({ detail: "boom" }))
      yield* t.exit(ExitReason.Normal())
      yield* waitFor(sup.recentEvents, (e) => count(e, "ready", "p") === 2 && count(e, "exit", "t") === 1)
      assert.deepStrictEqual((yield* sup.ended).map((e) => [e.id, e.reason._tag]), [["t", "Normal"]])
    }))
})
