// The single-cell result cache shared by every backend: key = sha256 of (kernel kind and version, limits, code),
// value = the outputs of a successful run. Only clean, complete runs are stored; a dead memcached is a miss.
import { execFile } from "node:child_process"
import { createHash } from "node:crypto"
import { z } from "zod"
import { OutputMessage } from "../protocol/worker.ts"
import type { KernelKind, Limits, OutputMsg } from "../protocol/browser.ts"
import { Memcache } from "./memcache.ts"

/** Bump when the stored shape or the meaning of a key changes. */
const CACHE_FORMAT = 1
/** A line that opts the code out of the cache, e.g. for code that reads the clock or random numbers. */
const NOCACHE_MARKER = /^\s*#\s*sagews:\s*nocache\b/m

const Stored = z.object({ format: z.literal(CACHE_FORMAT), outputs: z.array(OutputMessage) })

export const optedOut = (code: string): boolean => NOCACHE_MARKER.test(code)

export const cacheKey = (kernel: KernelKind, version: string, limits: Limits, code: string): string => {
  const sortedLimits = Object.fromEntries(Object.entries(limits).sort(([a], [b]) => a.localeCompare(b)))
  const hash = createHash("sha256").update(JSON.stringify([CACHE_FORMAT, kernel, version, sortedLimits, code])).digest("hex")
  return `sagews:r:${hash}`
}

export interface ResultCache {
  get(key: string): Promise<ReadonlyArray<OutputMsg> | undefined>
  set(key: string, outputs: ReadonlyArray<OutputMsg>): Promise<void>
  close(): void
  stats(): { hits: number; misses: number }
}


export const noCache: ResultCache = {
  get: () => Promise.resolve(undefined),
  set: () => Promise.resolve(),
  close: () => undefined,
  stats: () => ({ hits: 0, misses: 0 }),
}

export const memcachedResults = (address: string, options: { ttl: number; timeout: number; maxBytes: number }): ResultCache => {
  const mc = new Memcache(address, options.timeout)
  return {
    get: async (key) => {
      const raw = await mc.get(key)
      if (raw === undefined) return undefined
      try {
        const parsed = Stored.safeParse(JSON.parse(raw.toString("utf8")))
        return parsed.success ? parsed.data.outputs : undefined
      } catch {
        return undefined
      }
    },
    set: async (key, outputs) => {
      const value = Buffer.from(JSON.stringify({ format: CACHE_FORMAT, outputs }))
      if (value.length <= options.maxBytes) await mc.set(key, value, options.ttl)
    },
    close: () => mc.close(),
    stats: () => ({ hits: mc.hits, misses: mc.misses }),
  }
}

const dpkgVersion = (pkg: string): Promise<string> =>
  new Promise((resolve) => {
    execFile("dpkg-query", ["-W", "-f=${Version}", pkg], { timeout: 5_000 }, (error, stdout) => resolve(error === null ? stdout.trim() : "unknown"))
  })

/** Version strings of the kernels on this machine (Debian packages), part of every cache key. */
export const kernelVersions = async (): Promise<Record<KernelKind, string>> => {
  const [sage, python, sympy] = await Promise.all([dpkgVersion("sagemath"), dpkgVersion("python3"), dpkgVersion("python3-sympy")])
  return { sage: `sagemath ${sage}`, python: `python3 ${python} sympy ${sympy}` }
}
