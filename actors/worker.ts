// The worker actor: `node src/worker/main.ts` as a supervised process; ready when it speaks first (the
// authentication challenge), live while it keeps doing so. Its sessions run under its own dynamic supervisor.
import { join } from "node:path"
import type { ChildSpec, Restart, Shutdown } from "../supervisors/child.ts"
import { type LivenessOptions, processSpec } from "./process.ts"

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
}

/** A hung worker (SIGSTOP, a blocked event loop) is killed after about interval x failures + timeout. */
const LIVENESS: Omit<LivenessOptions, "probe"> = { interval: 5_000, timeout: 2_000, failures: 3 }

/** ms for the worker to bind its port; the forkservers warm up after that, sessions wait for them */
const WORKER_READY_TIMEOUT = 15_000
/** the worker ends every session (escalating to SIGKILL, 500 ms a step) before it exits */
const WORKER_SHUTDOWN = 10_000

export const workerSpec = (options: WorkerActorOptions): ChildSpec => {
  const args = [join(import.meta.dirname, "../src/worker/main.ts"), "--data", options.dataDir, "--port", String(options.port), "--id", options.id]
  if (options.host !== undefined) args.push("--host", options.host)
  if (options.config !== undefined) args.push("--config-json", JSON.stringify(options.config))
  const probe = { _tag: "banner" as const, port: options.port }
  return processSpec({
    id: options.id,
    command: process.execPath,
    args,
    dataDir: options.dataDir,
    ready: probe,
    readyTimeout: WORKER_READY_TIMEOUT,
    liveness: { probe, ...(options.liveness ?? LIVENESS) },
    port: options.port,
    logFormat: "json",
    shutdown: options.shutdown ?? WORKER_SHUTDOWN,
    restart: options.restart ?? "permanent",
  })
}
