// Nested supervisors: an escalation below is a Crash exit of the nested supervisor, handled by the parent's policy.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, PubSub, Scope } from "effect"
import { ExitReason } from "../../supervisors/exit.ts"
import { make, supervisorChild } from "../../supervisors/supervisor.ts"
import { count, makeChild, NO_BACKOFF, waitFor } from "./harness.ts"

const crash = ExitReason.Crash({ detail: "boom" })

describe("nested supervisors", () => {
  it.effect("escalation propagates to the parent, which restarts the nested supervisor", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const db = makeChild(log, "db", { pid: 42 })
      const web = makeChild(log, "web")
      const store = supervisorChild({ id: "store", intensity: 1, period: 5, backoff: NO_BACKOFF, children: [db.spec] })
      const root = yield* make({ id: "root", intensity: 3, backoff: NO_BACKOFF, children: [store, web.spec] })
      assert.deepStrictEqual(log, ["start:db", "start:web"])

      const tree = yield* root.children
      assert.strictEqual(tree[0]?.id, "store")
      assert.strictEqual(tree[0]?.children?.[0]?.id, "db")
      assert.strictEqual(tree[0]?.children?.[0]?.pid, 42)

      yield* db.exit(crash) // restart 1 in store: allowed
      yield* waitFor(root.recentEvents, (e) => count(e, "ready", "db") === 2)
      yield* db.exit(crash) // restart 2 in store: escalates
      const ev = yield* waitFor(root.recentEvents, (e) => count(e, "ready", "store") === 2, "store restarted")
      const exit = ev.find((e) => e.kind === "exit" && e.child === "store")
      assert.strictEqual(exit?.reason?._tag, "Crash")
      assert.match(exit?.reason?._tag === "Crash" ? exit.reason.detail : "", /supervisor "store" gave up/)
      assert.strictEqual(count(ev, "escalation"), 1)
      assert.strictEqual(db.starts(), 3)
      assert.strictEqual(web.starts(), 1) // one_for_one at the root
      const after = yield* root.children
      assert.strictEqual(after[0]?.restarts, 1)
      assert.strictEqual(after[0]?.state, "running")
      assert.strictEqual(after[0]?.children?.[0]?.restarts, 0) // a fresh supervisor
    }))

  it.effect("an operator restart reaches a child below a nested supervisor, and an unknown id is refused", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const worker = makeChild(log, "worker:1")
      const compute = supervisorChild({ id: "compute", backoff: NO_BACKOFF, children: [worker.spec] })
      const root = yield* make({ id: "root", backoff: NO_BACKOFF, children: [compute] })
      yield* root.restartChild("worker:1")
      assert.strictEqual(worker.starts(), 2)
      const tree = yield* root.children
      assert.strictEqual(tree[0]?.restarts, 0) // compute itself was not touched
      assert.strictEqual(tree[0]?.children?.[0]?.restarts, 1)
      const error = yield* Effect.flip(root.restartChild("worker:9"))
      assert.strictEqual(error._tag, "UnknownChild")
    }))

  it.effect("repeated escalations exhaust the parent's intensity in turn", () =>
    Effect.gen(function*() {
      const db = makeChild([], "db")
      const store = supervisorChild({ id: "store", intensity: 0, backoff: NO_BACKOFF, children: [db.spec] })
      const root = yield* make({ id: "root", intensity: 1, backoff: NO_BACKOFF, children: [store] })
      yield* db.exit(crash)
      yield* waitFor(root.recentEvents, (e) => count(e, "ready", "store") === 2)
      yield* db.exit(crash)
      const error = yield* Effect.flip(root.await)
      assert.strictEqual(error.supervisor, "root")
      assert.strictEqual(error.child, "store")
    }))

  it.effect("closing the root stops the nested tree depth-first in reverse order", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const [a, b, c] = ["a", "b", "c"].map((id) => makeChild(log, id))
      const inner = supervisorChild({ id: "inner", children: [b!.spec, c!.spec] })
      const scope = yield* Scope.make()
      yield* make({ id: "root", children: [a!.spec, inner] }).pipe(Scope.provide(scope))
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(log, ["start:a", "start:b", "start:c", "stop:c", "stop:b", "stop:a"])
    }))

  it.effect("the root's events carry the nested supervisors' events", () =>
    Effect.gen(function*() {
      const db = makeChild([], "db")
      const store = supervisorChild({ id: "store", children: [db.spec] })
      const root = yield* make({ id: "root", children: [store] })
      const sub = yield* PubSub.subscribe(root.events)
      yield* root.restartChild("store")
      const all = yield* PubSub.takeAll(sub)
      const fromStore = all.filter((e) => e.supervisor === "store").map((e) => `${e.kind}:${e.child}`)
      assert.deepStrictEqual(fromStore, ["stop:db", "stop:undefined", "start:db", "ready:db"])
    }))
})
