// Declarations are validated when a supervisor is built; each error names the field, the value and what was expected.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { ChildSpec } from "../../supervisors/child.ts"
import type { SupervisorSpec } from "../../supervisors/declaration.ts"
import { makeDynamic } from "../../supervisors/dynamic.ts"
import { make, supervisorChild } from "../../supervisors/supervisor.ts"
import { makeChild } from "./harness.ts"

const ok = (id: string) => makeChild([], id).spec
/** Declarations as they might arrive from untyped config: the validator must not trust the types. */
const loose = (spec: unknown) => spec as SupervisorSpec
const child = (spec: unknown) => spec as ChildSpec

const invalid = (spec: SupervisorSpec) => Effect.flip(make(spec))

describe("validation", () => {
  it.effect("names a bad restart type with field, value and expected", () =>
    Effect.gen(function*() {
      const e = yield* invalid({
        id: "sup",
        children: [ok("a"), ok("b"), child({ ...ok("c"), restart: "sometimes" })],
      })
      assert.strictEqual(e._tag, "InvalidSpec")
      assert.strictEqual(e.field, "children[2].restart")
      assert.strictEqual(e.value, "sometimes")
      assert.strictEqual(e.expected, "permanent | transient | temporary")
      assert.strictEqual(e.message, `supervisor "sup": children[2].restart is "sometimes"; expected permanent | transient | temporary`)
    }))

  it.effect("duplicate ids", () =>
    Effect.gen(function*() {
      const e = yield* invalid({ id: "sup", children: [ok("a"), ok("a")] })
      assert.strictEqual(e.field, "children[1].id")
      assert.strictEqual(e.value, "a")
    }))

  const cases: ReadonlyArray<[string, unknown, string, unknown]> = [
    ["strategy", { id: "s", strategy: "one_for_some", children: [] }, "strategy", "one_for_some"],
    ["intensity", { id: "s", intensity: -1, children: [] }, "intensity", -1],
    ["period", { id: "s", period: 0, children: [] }, "period", 0],
    ["backoff.factor", { id: "s", backoff: { factor: 0.5 }, children: [] }, "backoff.factor", 0.5],
    ["backoff.max", { id: "s", backoff: { initial: "2 seconds", max: "1 second" }, children: [] }, "backoff.max", "1 second"],
    ["empty id", { id: "", children: [] }, "id", ""],
    ["children", { id: "s", children: "a" }, "children", "a"],
    ["shutdown", { id: "s", children: [{ id: "a", start: Effect.void, shutdown: "soon" }] }, "children[0].shutdown", "soon"],
    ["type", { id: "s", children: [{ id: "a", start: Effect.void, type: "daemon" }] }, "children[0].type", "daemon"],
    ["start", { id: "s", children: [{ id: "a", start: "postgres -D data" }] }, "children[0].start", "postgres -D data"],
  ]
  for (const [name, spec, field, value] of cases) {
    it.effect(`bad ${name}`, () =>
      Effect.gen(function*() {
        const e = yield* invalid(loose(spec))
        assert.strictEqual(e.field, field)
        assert.deepStrictEqual(e.value, value)
      }))
  }

  it.effect("nested declarations are validated with the parent, with a full path", () =>
    Effect.gen(function*() {
      const inner = supervisorChild({ id: "store", children: [ok("pg"), child({ ...ok("mc"), shutdown: -5 })] })
      const e = yield* invalid({ id: "root", children: [ok("control"), inner] })
      assert.strictEqual(e.field, "children[1].children[1].shutdown")
      assert.strictEqual(e.value, -5)
    }))

  it.effect("dynamic: bad maxChildren", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(makeDynamic({ id: "sessions", maxChildren: 0 }))
      assert.strictEqual(e.field, "maxChildren")
    }))

  const dynamicCases: ReadonlyArray<[string, unknown, string, unknown, string]> = [
    ["maxChildrenPerKey 0", { maxChildrenPerKey: 0 }, "maxChildrenPerKey", 0, "an integer > 0 (or Infinity)"],
    ["maxChildrenPerKey 1.5", { maxChildrenPerKey: 1.5 }, "maxChildrenPerKey", 1.5, "an integer > 0 (or Infinity)"],
    ["keepEnded", { keepEnded: "forever" }, "keepEnded", "forever", "a finite duration >= 0"],
    ["keepEnded negative", { keepEnded: -1 }, "keepEnded", -1, "a finite duration >= 0"],
    ["maxEnded", { maxEnded: -3 }, "maxEnded", -3, "an integer >= 0"],
  ]
  for (const [name, fields, field, value, expected] of dynamicCases) {
    it.effect(`dynamic: bad ${name}`, () =>
      Effect.gen(function*() {
        const e = yield* Effect.flip(makeDynamic({ id: "sessions", ...(fields as object) }))
        assert.deepStrictEqual([e.field, e.value, e.expected], [field, value, expected])
        assert.include(e.message, `${field} is ${JSON.stringify(value)}`)
      }))
  }

  it.effect("dynamic: the new fields accept their defaults' kinds", () =>
    Effect.gen(function*() {
      yield* makeDynamic({ id: "sessions", maxChildrenPerKey: Infinity, keepEnded: 60_000, maxEnded: 0 })
      yield* makeDynamic({ id: "sessions", maxChildrenPerKey: 3, keepEnded: "1 hour" })
    }))
})
