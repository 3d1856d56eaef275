// The worker actor: `node src/worker/main.ts` as a supervised process; ready when it speaks first (the
// authentication challenge), live while it keeps doing so. Its sessions run under its own dynamic supervisor.
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { connect as tlsConnect } from "node:tls"
import { Effect } from "effect"
import type { ChildSpec, Restart, Shutdown } from "../supervisors/child.ts"
import type { DbTarget } from "../src/db/credentials.ts"
import { type ChildDb, resolveChildDb } from "./childdb.ts"
import { type LivenessOptions, type Probe, processSpec } from "./process.ts"

export interface WorkerActorOptions {
  /** e.g. "worker:1" */
  readonly id: string
  readonly dataDir: string
  readonly port: number
  readonly host?: string
  /** worker settings beyond id/data/port (kernels, pool, uidRange, limits, ...): see src/worker/config.ts */
  readonly config?: Readonly<Record<string, unknown>>
  readonly restart?: Restart
  readonly shutdown?: Shutdown
  /** liveness timing (the probe is the challenge banner); default: LIVENESS */
  readonly liveness?: Omit<LivenessOptions, "probe">
  /** the cluster's registry: the worker registers itself there and beats (src/worker/registration.ts) */
  readonly db?: DbTarget
  /** it listens on `host` over TLS (its config's tls): the probe checks its certificate against this CA file */
  readonly tls?: { readonly ca: string }
}

/** A hung worker (SIGSTOP, a blocked event loop) is killed after about interval x failures + timeout. */
const LIVENESS: Omit<LivenessOptions, "probe"> = { interval: 5_000, timeout: 2_000, failures: 3 }

/** ms for the worker to bind its port; the forkservers warm up after that, sessions wait for them */
const WORKER_READY_TIMEOUT = 15_000
/** the worker ends every session (escalating to SIGKILL, 500 ms a step) before it exits */
const WORKER_SHUTDOWN = 10_000

export const workerSpec = (options: WorkerActorOptions): ChildSpec => {
  const spec = (db: ChildDb | undefined) => {
    const args = [join(import.meta.dirname, "../src/worker/main.ts"), "--data", options.dataDir, "--port", String(options.port), "--id", options.id]
    if (options.host !== undefined) args.push("--host", options.host)
    if (db !== undefined) args.push("--db", db.url)
    if (options.config !== undefined) args.push("--config-json", JSON.stringify(options.config))
    return processSpec({
      id: options.id,
      command: process.execPath,
      args,
      ...(db !== undefined ? { env: db.env } : {}),
    dataDir: options.dataDir,
      ready: probe(options),
      readyTimeout: WORKER_READY_TIMEOUT,
      liveness: { probe: probe(options), ...(options.liveness ?? LIVENESS) },
      port: options.port,
      logFormat: "json",
      shutdown: options.shutdown ?? WORKER_SHUTDOWN,
      restart: options.restart ?? "permanent",
    })
  }
  // Built once now, so that bad options fail at build time; the real one at each start, with the password read then.
  const template = spec(undefined)
  return { ...template, start: options.db === undefined ? template.start : resolveChildDb(options.dataDir, options.db).pipe(Effect.flatMap((db) => spec(db).start)) }
}

/** the challenge banner on the worker's port: on loopback as it is, over TLS (checked against the CA) where it listens on an address */
const probe = (options: WorkerActorOptions): Probe =>
  options.tls === undefined
    ? { _tag: "banner", port: options.port }
    : { _tag: "custom", check: tlsBanner(options.host ?? "127.0.0.1", options.port, options.tls.ca) }

/** Succeeds once the worker, over TLS with a certificate of the CA, has said its first bytes (the challenge). */
const tlsBanner = (host: string, port: number, caFile: string): Effect.Effect<void, string> =>
  Effect.callback<void, string>((resume) => {
    let ca: Buffer
    try {
      ca = readFileSync(caFile)
    } catch (e) {
      resume(Effect.fail(`tls banner ${host}:${port}: cannot read the CA ${caFile}: ${e instanceof Error ? e.message : String(e)}`))
      return
    }
    const socket = tlsConnect({ host, port, ca })
    const done = (failure: string | undefined): void => {
      socket.destroy()
      resume(failure === undefined ? Effect.void : Effect.fail(`tls banner ${host}:${port}: ${failure}`))
    }
    socket.once("data", () => done(undefined))
    socket.once("error", (e) => done(e.message))
    socket.once("end", () => done("connection closed before any byte arrived"))
    return Effect.sync(() => socket.destroy())
  })
