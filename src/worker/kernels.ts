// The worker's kernel supervisor: one permanent child per forkserver (supervisors/ engine, one_for_one).
// A dead forkserver is restarted with backoff; past its intensity the worker gives up and exits for its own supervisor.
import { Cause, Effect, Exit, Fiber, Logger, References, Scope } from "effect"
import type { LogLevel } from "effect/LogLevel"
import type { ChildSpec } from "../../supervisors/child.ts"
import { ExitReason } from "../../supervisors/exit.ts"
import { make, type SupervisorSpec } from "../../supervisors/supervisor.ts"
import type { KernelKind } from "../protocol/worker.ts"
import type { KernelPool } from "./forkserver.ts"
import { log, type Level } from "./log.ts"

/** A broken kernel install crash-loops: 10 restarts a minute, then the worker exits and its supervisor decides. */
const KERNEL_SUPERVISOR = { strategy: "one_for_one", intensity: 10, period: 60, backoff: { initial: "200 millis", max: "10 seconds", resetAfter: "30 seconds" } } as const

const forkserverSpec = (pool: KernelPool): ChildSpec => ({
  id: `forkserver:${pool.kind}`,
  restart: "permanent",
  shutdown: "brutal",
  start: Effect.acquireRelease(
    Effect.tryPromise({ try: () => pool.launch(), catch: (error) => ExitReason.Crash({ cause: error instanceof Error ? error.message : String(error) }) }),
    () => Effect.promise(() => pool.kill()),
  ).pipe(
    Effect.map((incarnation) => ({
      pid: incarnation.pid,
      exit: Effect.promise(() => incarnation.exit).pipe(
        Effect.map((exit): ExitReason => ("signal" in exit ? ExitReason.Killed({ signal: exit.signal }) : exit.code === 0 ? ExitReason.Normal() : ExitReason.Crash({ cause: exit.why, code: exit.code }))),
      ),
    })),
  ),
})

const LEVELS: Record<LogLevel, Level> = { All: "debug", Trace: "debug", Debug: "debug", Info: "info", Warn: "warn", Error: "error", Fatal: "fatal", None: "info" }

/** The engine's events as our JSON log lines. */
const jsonLogger = Logger.layer([
  Logger.make(({ message, logLevel, fiber }) => {
    const annotations = fiber.getRef(References.CurrentLogAnnotations)
    const text = (Array.isArray(message) ? message : [message]).map((m) => (typeof m === "string" ? m : JSON.stringify(m))).join(" ")
    log(LEVELS[logLevel], text, typeof annotations["child"] === "string" ? { child: annotations["child"] } : {})
  }),
])

export interface KernelSupervisor {
  /** stops every forkserver (reverse order) and waits */
  readonly stop: () => Promise<void>
}

/**
 * Starts the forkservers under a supervisor in the background (sessions wait for their pool to be ready).
 * `onGiveUp` is called if the supervisor escalates (a forkserver keeps dying).
 */
export const superviseKernels = (workerId: string, pools: ReadonlyMap<KernelKind, KernelPool>, onGiveUp: (why: string) => void): KernelSupervisor => {
  const scope = Effect.runSync(Scope.make())
  const spec: SupervisorSpec = { id: `${workerId}/kernels`, ...KERNEL_SUPERVISOR, children: [...pools.values()].map(forkserverSpec) }
  const fiber = Effect.runFork(
    make(spec).pipe(
      Effect.flatMap((handle) => handle.await),
      Scope.provide(scope),
      Effect.provide(jsonLogger),
      Effect.catchCause((cause) => Effect.sync(() => Cause.hasInterruptsOnly(cause) || onGiveUp(Cause.pretty(cause)))),
    ),
  )
  return {
    stop: () => Effect.runPromise(Scope.close(scope, Exit.void).pipe(Effect.andThen(Fiber.interrupt(fiber)), Effect.provide(jsonLogger))),
  }
}
