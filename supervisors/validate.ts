// Validation of supervisor declarations when a supervisor is built, and of dynamic children when added: every error
// names the field and the bad value. Nested supervisors are validated with their parent (`children[1].children[0].id`).
import { Duration, Effect, Option } from "effect"
import { CHILD_DEFAULTS, type ChildSpec } from "./child.ts"
import {
  type BackoffOptions,
  type ChildSpecResolved,
  type DynamicSupervisorSpec,
  type ResolvedBackoff,
  type ResolvedSupervisor,
  SUPERVISOR_DEFAULTS,
  type SupervisorSpec,
} from "./declaration.ts"
import { InvalidSpec } from "./errors.ts"

const STRATEGIES = ["one_for_one", "one_for_all", "rest_for_one"] as const
const RESTARTS = ["permanent", "transient", "temporary"] as const
const TYPES = ["worker", "supervisor"] as const

/** Child specs built by `supervisorChild`, mapped to their declaration so the parent validates them too. */
const nested = new WeakMap<ChildSpec, SupervisorSpec>()
export const registerNested = (spec: ChildSpec, declaration: SupervisorSpec): void => {
  nested.set(spec, declaration)
}

type Fail = (field: string, value: unknown, expected: string) => InvalidSpec

const oneOf = <T extends string>(values: ReadonlyArray<T>, v: unknown): v is T =>
  typeof v === "string" && (values as ReadonlyArray<string>).includes(v)

const isNonNegInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0

const isCap = (v: unknown): v is number => v === Number.POSITIVE_INFINITY || (isNonNegInt(v) && v > 0)

const millis = (v: unknown): number | undefined => {
  if (typeof v === "number") return Number.isFinite(v) && v >= 0 ? v : undefined
  const d = Duration.fromInput(v as Duration.Input)
  if (Option.isNone(d)) return undefined
  const ms = Duration.toMillis(d.value)
  return Number.isFinite(ms) && ms >= 0 ? ms : undefined
}

const resolveBackoff = (b: BackoffOptions | undefined, fail: Fail): ResolvedBackoff | InvalidSpec => {
  if (b !== undefined && (typeof b !== "object" || b === null)) return fail("backoff", b, "an object")
  const d = SUPERVISOR_DEFAULTS.backoff
  const initial = b?.initial ?? d.initial, max = b?.max ?? d.max, reset = b?.resetAfter ?? d.resetAfter
  const factor = b?.factor ?? d.factor
  const initialMs = millis(initial)
  if (initialMs === undefined) return fail("backoff.initial", initial, "a finite duration >= 0")
  const maxMs = millis(max)
  if (maxMs === undefined || maxMs < initialMs) return fail("backoff.max", max, "a finite duration >= backoff.initial")
  const resetAfterMs = millis(reset)
  if (resetAfterMs === undefined) return fail("backoff.resetAfter", reset, "a finite duration >= 0")
  if (typeof factor !== "number" || !(factor >= 1) || !Number.isFinite(factor)) {
    return fail("backoff.factor", factor, "a number >= 1")
  }
  return { initialMs, factor, maxMs, resetAfterMs }
}

const resolveChild = (c: ChildSpec, path: string, fail: Fail): ChildSpecResolved | InvalidSpec => {
  if (typeof c !== "object" || c === null) return fail(path, c, "a child spec object")
  if (typeof c.id !== "string" || c.id.length === 0) return fail(`${path}.id`, c.id, "a non-empty string")
  if (!Effect.isEffect(c.start)) return fail(`${path}.start`, c.start, "an Effect that resolves when the child is ready")
  const restart = c.restart ?? CHILD_DEFAULTS.restart
  if (!oneOf(RESTARTS, restart)) return fail(`${path}.restart`, restart, RESTARTS.join(" | "))
  const type = c.type ?? CHILD_DEFAULTS.type
  if (!oneOf(TYPES, type)) return fail(`${path}.type`, type, TYPES.join(" | "))
  // OTP gives supervisors infinity by default: they must be allowed to stop their own children.
  const shutdown = c.shutdown ?? (type === "supervisor" ? "infinity" : CHILD_DEFAULTS.shutdown)
  if (!(shutdown === "brutal" || shutdown === "infinity" || isNonNegInt(shutdown))) {
    return fail(`${path}.shutdown`, shutdown, `an integer number of ms >= 0 | "brutal" | "infinity"`)
  }
  return { id: c.id, start: c.start, restart, shutdown, type }
}

interface Flags {
  readonly id: string
  readonly intensity?: number | undefined
  readonly period?: number | undefined
  readonly backoff?: BackoffOptions | undefined
}

const resolveFlags = (s: Flags, prefix: string, fail: Fail) => {
  if (typeof s.id !== "string" || s.id.length === 0) return fail(`${prefix}id`, s.id, "a non-empty string")
  const intensity = s.intensity ?? SUPERVISOR_DEFAULTS.intensity
  if (!isNonNegInt(intensity)) return fail(`${prefix}intensity`, intensity, "an integer >= 0")
  const period = s.period ?? SUPERVISOR_DEFAULTS.period
  if (typeof period !== "number" || !Number.isFinite(period) || period <= 0) {
    return fail(`${prefix}period`, period, "a number of seconds > 0")
  }
  const backoff = resolveBackoff(s.backoff, (f, v, e) => fail(`${prefix}${f}`, v, e))
  if (backoff instanceof InvalidSpec) return backoff
  return { id: s.id, intensity, periodMs: period * 1000, backoff }
}

const resolveStatic = (s: SupervisorSpec, prefix: string, fail: Fail): ResolvedSupervisor | InvalidSpec => {
  if (typeof s !== "object" || s === null) return fail(prefix || "spec", s, "a supervisor declaration")
  const flags = resolveFlags(s, prefix, fail)
  if (flags instanceof InvalidSpec) return flags
  const strategy = s.strategy ?? SUPERVISOR_DEFAULTS.strategy
  if (!oneOf(STRATEGIES, strategy)) return fail(`${prefix}strategy`, strategy, STRATEGIES.join(" | "))
  if (!Array.isArray(s.children)) return fail(`${prefix}children`, s.children, "an array of child specs")
  const children: Array<ChildSpecResolved> = []
  const seen = new Set<string>()
  for (const [i, c] of s.children.entries()) {
    const path = `${prefix}children[${i}]`
    const child = resolveChild(c, path, fail)
    if (child instanceof InvalidSpec) return child
    if (seen.has(child.id)) return fail(`${path}.id`, child.id, "an id not used by another child of this supervisor")
    seen.add(child.id)
    const inner = nested.get(c)
    if (inner !== undefined) {
      const checked = resolveStatic(inner, `${path}.`, fail)
      if (checked instanceof InvalidSpec) return checked
    }
    children.push(child)
  }
  return { ...flags, strategy, ...STATIC_LIMITS, children }
}

/** Static supervisors have no caps, and keep no records of ended children (theirs stay in `children`). */
const STATIC_LIMITS = {
  maxChildren: SUPERVISOR_DEFAULTS.maxChildren,
  maxChildrenPerKey: SUPERVISOR_DEFAULTS.maxChildrenPerKey,
  keepEndedMs: 0,
  maxEnded: 0,
}

export const validateSupervisor = (spec: SupervisorSpec): Effect.Effect<ResolvedSupervisor, InvalidSpec> => {
  const supervisor = typeof spec?.id === "string" ? spec.id : "?"
  const r = resolveStatic(spec, "", (field, value, expected) => new InvalidSpec({ supervisor, field, value, expected }))
  return r instanceof InvalidSpec ? Effect.fail(r) : Effect.succeed(r)
}

export const validateDynamic = (spec: DynamicSupervisorSpec): Effect.Effect<ResolvedSupervisor, InvalidSpec> => {
  const supervisor = typeof spec?.id === "string" ? spec.id : "?"
  const fail: Fail = (field, value, expected) => new InvalidSpec({ supervisor, field, value, expected })
  const flags = resolveFlags(spec, "", fail)
  if (flags instanceof InvalidSpec) return Effect.fail(flags)
  const maxChildren = spec.maxChildren ?? SUPERVISOR_DEFAULTS.maxChildren
  if (!isCap(maxChildren)) return Effect.fail(fail("maxChildren", maxChildren, "an integer > 0 (or Infinity)"))
  const maxChildrenPerKey = spec.maxChildrenPerKey ?? SUPERVISOR_DEFAULTS.maxChildrenPerKey
  if (!isCap(maxChildrenPerKey)) {
    return Effect.fail(fail("maxChildrenPerKey", maxChildrenPerKey, "an integer > 0 (or Infinity)"))
  }
  const keepEnded = spec.keepEnded ?? SUPERVISOR_DEFAULTS.keepEnded
  const keepEndedMs = millis(keepEnded)
  if (keepEndedMs === undefined) return Effect.fail(fail("keepEnded", keepEnded, "a finite duration >= 0"))
  const maxEnded = spec.maxEnded ?? SUPERVISOR_DEFAULTS.maxEnded
  if (!isNonNegInt(maxEnded)) return Effect.fail(fail("maxEnded", maxEnded, "an integer >= 0"))
  return Effect.succeed({
    ...flags,
    strategy: "one_for_one",
    maxChildren,
    maxChildrenPerKey,
    keepEndedMs,
    maxEnded,
    children: [],
  })
}

/** startChild's options: a key, when given, is a non-empty string. */
export const validateStartOptions = (
  supervisor: string,
  options: { readonly key?: string | undefined } | undefined,
): Effect.Effect<string | undefined, InvalidSpec> => {
  const key: unknown = options?.key
  if (key === undefined || (typeof key === "string" && key.length > 0)) return Effect.succeed(key)
  return Effect.fail(new InvalidSpec({ supervisor, field: "options.key", value: key, expected: "a non-empty string" }))
}

/** One child spec added at run time to a dynamic supervisor. */
export const validateChild = (
  supervisor: string,
  spec: ChildSpec,
  taken: (id: string) => boolean,
): Effect.Effect<ChildSpecResolved, InvalidSpec> => {
  const fail: Fail = (field, value, expected) => new InvalidSpec({ supervisor, field, value, expected })
  const child = resolveChild(spec, "child", fail)
  if (child instanceof InvalidSpec) return Effect.fail(child)
  if (taken(child.id)) return Effect.fail(fail("child.id", child.id, "an id not used by another running child"))
  const inner = nested.get(spec)
  if (inner !== undefined) {
    const checked = resolveStatic(inner, "child.", fail)
    if (checked instanceof InvalidSpec) return Effect.fail(checked)
  }
  return Effect.succeed(child)
}
