// The backend actor: one HTTP + SockJS server of ours (src/backend/main.ts), probed on GET /healthz;
// it is told where the workers, the session registry and the result cache are.
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import type { ChildSpec } from "../supervisors/child.ts"
import { type DbTarget } from "../src/db/credentials.ts"
import { type ChildDb, resolveChildDb } from "./childdb.ts"
import { type LivenessOptions, processSpec } from "./process.ts"
import { BACKEND_CONFIG_ENV } from "../src/backend/options.ts"

const MAIN = fileURLToPath(new URL("../src/backend/main.ts", import.meta.url))

export interface BackendOptions {
  readonly id: string
  /** the cluster-wide id it registers under (`backend:1@<host>` on a joined host); default: id */
  readonly name?: string
  /** the address it listens on (the config's `host` of the backend, told in `config`); default 127.0.0.1 */
  readonly host?: string
  readonly dataDir: string
  readonly port: number
  readonly liveness: Omit<LivenessOptions, "probe">
  readonly shutdown?: number
  /** the workers' "host:port" addresses (config: workers.basePort .. + count - 1 on 127.0.0.1) */
  readonly workers?: ReadonlyArray<string>
  /** the session registry's PostgreSQL; without it sessions route only within this backend */
  readonly db?: DbTarget
  /** memcached's unix socket for the result cache (config: cache.enabled); without it nothing is cached */
  readonly cache?: string
  /** seconds a cached result lives (config: cache.ttlSeconds) */
  readonly cacheTtl?: number
  /** backend settings beyond the flags (the config's admission section, ...): see src/backend/options.ts */
  readonly config?: Readonly<Record<string, unknown>>
}

export const backendSpec = (o: BackendOptions): ChildSpec => {
  const spec = (db: ChildDb | undefined) =>
    processSpec({
      id: o.id,
      command: process.execPath,
      args: [
        MAIN, "--data", o.dataDir, "--port", String(o.port), "--id", o.name ?? o.id,
        ...(o.workers !== undefined && o.workers.length > 0 ? ["--workers", o.workers.join(",")] : []),
        ...(db !== undefined ? ["--db", db.url] : []),
        ...(o.cache !== undefined ? ["--cache", o.cache] : []),
        ...(o.cacheTtl !== undefined ? ["--cache-ttl", String(o.cacheTtl)] : []),
      ],
      // in the environment, not on the command line that every user can read (/proc/<pid>/cmdline): it may hold a
      // sign-in provider's client secret
      ...(db !== undefined || o.config !== undefined
        ? { env: { ...(db?.env ?? {}), ...(o.config !== undefined ? { [BACKEND_CONFIG_ENV]: JSON.stringify(o.config) } : {}) } }
        : {}),
      dataDir: o.dataDir,
      port: o.port,
      logFormat: "json",
      ready: { _tag: "http", port: o.port, path: "/healthz", ...(o.host !== undefined ? { host: o.host } : {}) },
      liveness: { ...o.liveness, probe: { _tag: "http", port: o.port, path: "/healthz", ...(o.host !== undefined ? { host: o.host } : {}) } },
      ...(o.shutdown !== undefined ? { shutdown: o.shutdown } : {}),
    })
  // Built once now, so that bad options fail at build time; the real one at each start, with the password read then.
  const template = spec(undefined)
  return {
    ...template,
    start: o.db === undefined ? template.start : resolveChildDb(o.dataDir, o.db).pipe(Effect.flatMap((db) => spec(db).start)),
  }
}
