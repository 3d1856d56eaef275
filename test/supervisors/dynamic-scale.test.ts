// Thousands of short-lived children: 5,000 temporary sessions start (concurrently, under per-key caps) and end
// (half by themselves, half terminated) on the TestClock, in a few seconds of real time at most.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { makeDynamic } from "../../supervisors/dynamic.ts"
import { ExitReason } from "../../supervisors/exit.ts"
import { makeChild } from "./harness.ts"

const N = 5_000
const USERS = 100
/** A generous bound for a slow CI machine; the run takes well under it. */
const BUDGET_MS = 5_000

describe("many short-lived children", () => {
  it.effect(`${N} temporary children start and end quickly`, () =>
    Effect.gen(function*() {
      const began = performance.now()
      const sup = yield* makeDynamic({ id: "sessions", maxChildrenPerKey: N / USERS, maxEnded: N })
      const kids = Array.from({ length: N }, (_, i) => makeChild([], `s${i}`, { restart: "temporary" }))
      yield* Effect.forEach(kids, (k, i) => sup.startChild(k.spec, { key: `u${i % USERS}` }), {
        concurrency: "unbounded",
        discard: true,
      })
      assert.strictEqual(yield* sup.count, N)
      const refused = yield* Effect.flip(sup.startChild(makeChild([], "one-more").spec, { key: "u0" }))
      assert.strictEqual(refused._tag, "MaxChildrenPerKeyReached")

      yield* Effect.forEach(kids.slice(0, N / 2), (k) => k.exit(ExitReason.ClosedByUser()), { discard: true })
      yield* Effect.forEach(
        kids.slice(N / 2),
        (k) => sup.terminateChild(k.spec.id, ExitReason.ClosedByOperator()),
        { concurrency: "unbounded", discard: true },
      )
      for (let i = 0; i < 10_000 && (yield* sup.count) > 0; i++) yield* Effect.yieldNow
      assert.strictEqual(yield* sup.count, 0)

      const ended = yield* sup.ended
      assert.strictEqual(ended.length, N)
      assert.strictEqual(ended.filter((e) => e.reason._tag === "ClosedByUser").length, N / 2)
      assert.strictEqual(ended.filter((e) => e.reason._tag === "ClosedByOperator").length, N / 2)
      yield* sup.startChild(makeChild([], "after").spec, { key: "u0" }) // every key's place was freed
      const elapsed = performance.now() - began
      assert.isBelow(elapsed, BUDGET_MS, `${N} children took ${Math.round(elapsed)} ms`)
    }), 30_000)
})
