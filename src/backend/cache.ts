// The ResultCache service, the single-cell result cache shared by every backend: key = sha256 of (kernel kind and
// version, limits, code, the cell's language when it has one), value = the outputs of a successful run. Only clean, complete runs are stored; a dead
// memcached is a miss, never an error. Without --cache nothing is cached.
import { createHash } from "node:crypto"
import { Context, Effect, Layer } from "effect"
import { z } from "zod"
import { OutputMessage } from "../protocol/worker.ts"
import type { KernelKind, Language, Limits, OutputMsg } from "../protocol/browser.ts"
import { kernelVersions } from "../protocol/versions.ts"
import { Memcache } from "./memcache.ts"
import { Options } from "./options.ts"

/** Bump when the stored shape or the meaning of a key changes. */
const CACHE_FORMAT = 1
/** A line that opts the code out of the cache, e.g. for code that reads the clock or random numbers. */
const NOCACHE_MARKER = /^\s*#\s*sagews:\s*nocache\b/m

const Stored = z.object({ format: z.literal(CACHE_FORMAT), outputs: z.array(OutputMessage) })

export const optedOut = (code: string): boolean => NOCACHE_MARKER.test(code)

/**
 * The key of a run's result. The same code in another language is another result; a cell without a language keys as
 * before languages were part of the key (an array one shorter can never be equal), so no stored result is lost.
 */
export const cacheKey = (kernel: KernelKind, version: string, limits: Limits, code: string, language?: Language): string => {
  const sortedLimits = Object.fromEntries(Object.entries(limits).sort(([a], [b]) => a.localeCompare(b)))
  const parts = [CACHE_FORMAT, kernel, version, sortedLimits, code, ...(language !== undefined ? [language] : [])]
  const hash = createHash("sha256").update(JSON.stringify(parts)).digest("hex")
  return `sagews:r:${hash}`
}

export interface ResultStore {
  /** the version of each kernel on this machine, part of every key */
  readonly versions: Record<KernelKind, string>
  /** the outputs stored under `key`, or undefined for a miss (memcached down, slow or garbled included) */
  get(key: string): Effect.Effect<ReadonlyArray<OutputMsg> | undefined>
  /** stores the outputs if they fit; done when memcached said so or gave up */
  set(key: string, outputs: ReadonlyArray<OutputMsg>): Effect.Effect<void>
  stats(): { hits: number; misses: number }
}

const noCache = (versions: ResultStore["versions"]): ResultStore => ({
  versions,
  get: () => Effect.succeed(undefined),
  set: () => Effect.void,
  stats: () => ({ hits: 0, misses: 0 }),
})

const decode = (raw: Buffer): ReadonlyArray<OutputMsg> | undefined => {
  try {
    const parsed = Stored.safeParse(JSON.parse(raw.toString("utf8")))
    return parsed.success ? parsed.data.outputs : undefined
  } catch {
    return undefined // not JSON: somebody else's value under our key, a miss
  }
}

const memcachedResults = (versions: ResultStore["versions"], mc: Memcache, options: { ttl: number; maxBytes: number }): ResultStore => ({
  versions,
  get: Effect.fn("ResultCache.get")(function*(key: string) {
    const raw = yield* Effect.promise(() => mc.get(key))
    return raw === undefined ? undefined : decode(raw)
  }),
  set: Effect.fn("ResultCache.set")(function*(key: string, outputs: ReadonlyArray<OutputMsg>) {
    const value = Buffer.from(JSON.stringify({ format: CACHE_FORMAT, outputs }))
    if (value.length <= options.maxBytes) yield* Effect.promise(() => mc.set(key, value, options.ttl))
  }),
  stats: () => ({ hits: mc.hits, misses: mc.misses }),
})

export class ResultCache extends Context.Service<ResultCache, ResultStore>()("sagews/backend/ResultCache") {
  /** memcached at --cache (its client closed with the layer), or no cache at all */
  static readonly layer = Layer.effect(ResultCache, Effect.gen(function*() {
    const { cache, cacheTtl, cacheTimeout, cacheMaxBytes } = yield* Options
    const versions = yield* Effect.promise(kernelVersions)
    if (cache === undefined) return noCache(versions)
    const mc = yield* Effect.acquireRelease(Effect.sync(() => new Memcache(cache, cacheTimeout)), (mc) => Effect.sync(() => mc.close()))
    return memcachedResults(versions, mc, { ttl: cacheTtl, maxBytes: cacheMaxBytes })
  }))
}

