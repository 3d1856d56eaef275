// The process actor: runs one OS program as a supervised child (own process group, logs, pid file, probes, stop protocol).
// Every component actor (postgres, nginx, worker, ...) is a ChildSpec built by `processSpec`.
import { Cause, Deferred, Effect, Result, type Scope } from "effect"
import { CHILD_DEFAULTS, type ChildSpec, type Restart, type Running, type Shutdown } from "../supervisors/child.ts"
import { ExitReason, formatExit } from "../supervisors/exit.ts"
import { exitReasonOf, oomKills, type StopCause } from "./exitreason.ts"
import { defaultLevelOf, formatRecord, type LineContext, LogFile, passThroughLine, type Stream, wrapLine } from "./logfile.ts"
import { cleanLeftover, removePidFile, writePidFile } from "./pidfile.ts"
import { checkProbe, describeProbe } from "./probe.ts"
import { readStat } from "./procstat.ts"
import { awaitGroupGone, killGroup, signalGroup, stopGroup } from "./signals.ts"
import { type Spawned, spawnProcess } from "./spawn.ts"

/** How to tell that a child is ready (readiness) or still healthy (liveness). */
export type Probe =
  | { readonly _tag: "tcp"; readonly port: number; readonly host?: string }
  | { readonly _tag: "http"; readonly port: number; readonly path: string; readonly host?: string }
  /** Connect (TCP port or unix socket path) and receive at least one byte. */
  | { readonly _tag: "banner"; readonly port?: number; readonly path?: string }
  /** Readiness only: a line of the child's stdout/stderr matches. */
  | { readonly _tag: "line"; readonly pattern: RegExp }
  /** Anything else: succeeds when healthy, fails with a message that says what is wrong. */
  | { readonly _tag: "custom"; readonly check: Effect.Effect<void, string> }

export interface LivenessOptions {
  readonly probe: Probe
  /** ms between checks */
  readonly interval: number
  /** ms one check may take before it counts as failed */
  readonly timeout: number
  /** consecutive failures before the process is SIGKILLed and reported as Timeout("liveness") */
  readonly failures: number
}

export interface ProcessOptions {
  /** the child id in the tree, e.g. "postgres", "worker:1"; names the log and pid files */
  readonly id: string
  readonly command: string
  readonly args: ReadonlyArray<string>
  /** the data dir: logs go to <dataDir>/log/<id>.log, the pid file to <dataDir>/run/<id>.pid */
  readonly dataDir: string
  /** added to (and overriding) the environment of the tree itself */
  readonly env?: Readonly<Record<string, string>>
  readonly cwd?: string
  /** drop privileges to this uid/gid (needs root) */
  readonly uid?: number
  readonly gid?: number
  readonly ready: Probe
  /** ms the readiness probe may take in all before the start fails with Timeout("readiness") */
  readonly readyTimeout?: number
  readonly liveness?: LivenessOptions
  /** the port the child serves, shown by `status` */
  readonly port?: number
  /** the polite stop signal (default SIGTERM; nginx wants SIGQUIT, postgres SIGINT) */
  readonly stopSignal?: NodeJS.Signals
  readonly shutdown?: Shutdown
  readonly restart?: Restart
  /** "json": the child prints our JSON log lines itself; "wrap" (default): each output line is wrapped */
  readonly logFormat?: "json" | "wrap"
  /** maps a wrapped output line to a level (e.g. postgres "FATAL:" -> "fatal"); default: stdout info, stderr error */
  readonly levelOf?: (line: string, stream: "stdout" | "stderr") => LogLevel
}

export type LogLevel = "debug" | "info" | "warn" | "error" | "fatal"

/** ms the readiness probe may take in all, unless `readyTimeout` says otherwise */
export const DEFAULT_READY_TIMEOUT = 30_000
/** pause between two readiness attempts */
const READY_RETRY = "75 millis"
/** one readiness attempt may take this long (a probe that hangs must not eat the whole deadline) */
const READY_ATTEMPT_TIMEOUT = 2_000
/** after the main process is gone, how long its pipes may stay open before the exit is reported anyway */
const DRAIN_TIMEOUT = "1 second"

/**
 * Builds the child spec of one OS program. `start` resolves once the readiness probe passed.
 * Throws at build time, naming the field and the value, when the options cannot work.
 */
export const processSpec = (options: ProcessOptions): ChildSpec => {
  validate(options)
  return {
    id: options.id,
    start: startProcess(options),
    restart: options.restart ?? CHILD_DEFAULTS.restart,
    shutdown: options.shutdown ?? CHILD_DEFAULTS.shutdown,
    type: "worker",
  }
}

const validate = (options: ProcessOptions): void => {
  const invalid = (field: string, value: unknown, expected: string) => {
    throw new Error(`processSpec(${options.id}): ${field} is ${String(value)}, expected ${expected}`)
  }
  if (!/^[\w.:@-]+$/.test(options.id)) invalid("id", JSON.stringify(options.id), "letters, digits and . _ : @ - (it names files)")
  const positive = (field: string, value: number | undefined) => {
    if (value !== undefined && !(Number.isFinite(value) && value > 0)) invalid(field, value, "a positive number of ms")
  }
  positive("readyTimeout", options.readyTimeout)
  if (typeof options.shutdown === "number") positive("shutdown", options.shutdown)
  if (options.liveness !== undefined) {
    const { probe, interval, timeout, failures } = options.liveness
    if (probe._tag === "line") invalid("liveness.probe", "a line probe", "tcp, http, banner or custom (line works only for readiness)")
    positive("liveness.interval", interval)
    positive("liveness.timeout", timeout)
    if (!(Number.isInteger(failures) && failures >= 1)) invalid("liveness.failures", failures, "an integer >= 1")
  }
}

export const logPath = (dataDir: string, id: string): string => `${dataDir}/log/${id}.log`
export const pidPath = (dataDir: string, id: string): string => `${dataDir}/run/${id}.pid`

/** One life of the child: who asked it to stop, and its exit reason once it is fully gone. */
interface Life {
  readonly child: Spawned
  requested: StopCause | undefined
  readonly exit: Deferred.Deferred<ExitReason>
}

const startProcess = (options: ProcessOptions): Effect.Effect<Running, ExitReason, Scope.Scope> =>
  Effect.gen(function*() {
    const { id } = options
    const pidFile = pidPath(options.dataDir, id)
    const log = yield* Effect.acquireRelease(
      Effect.sync(() => new LogFile(logPath(options.dataDir, id))),
      (log) => Effect.sync(() => log.close()),
    )
    let childPid = process.pid
    const event = (level: LogLevel, msg: string) => Effect.sync(() => log.write([formatRecord(id, childPid, level, msg)]))

    const leftover = yield* cleanLeftover(pidFile)
    if (leftover._tag === "Killed") {
      yield* event("warn", `killed process group ${leftover.pid} left by a previous run (${leftover.processes} processes)`)
    } else if (leftover._tag === "Reused") {
      yield* event("info", `stale pid file: pid ${leftover.pid} now belongs to another process, left alone`)
    }

    const lineMatched = yield* Deferred.make<void>()
    const pattern = options.ready._tag === "line" ? options.ready.pattern : undefined
    const levelOf = options.levelOf ?? defaultLevelOf
    const format = options.logFormat === "json" ? passThroughLine : wrapLine
    const onLines = (lines: ReadonlyArray<string>, stream: Stream) => {
      const ctx: LineContext = { component: id, pid: childPid, stream, levelOf }
      log.write(lines.map((line) => format(line, ctx)))
      if (pattern !== undefined && !Deferred.isDoneUnsafe(lineMatched) && lines.some((line) => matches(pattern, line))) {
        Deferred.doneUnsafe(lineMatched, Effect.void)
      }
    }

    const oomBefore = oomKills()
    const life = yield* Effect.acquireRelease(
      Effect.gen(function*() {
        const child = yield* spawnProcess({ ...options, onLines }).pipe(
          Effect.mapError((cause) => ExitReason.Crash({ detail: cause })),
        )
        childPid = child.pid
        const life: Life = { child, requested: undefined, exit: yield* Deferred.make<ExitReason>() }
        writePidFile(pidFile, child.pid)
        yield* event("info", `spawned ${options.command} ${options.args.join(" ")}`.trimEnd())
        yield* Effect.forkDetach(watchExit(life, oomBefore, () => removePidFile(pidFile), event))
        return life
      }),
      (life) => stop(life, options, event),
    )

    yield* awaitReady(life, options, lineMatched, event)
    if (options.liveness !== undefined) yield* Effect.forkScoped(watchLiveness(life, options.liveness, event))
    return { pid: life.child.pid, port: options.port, exit: Deferred.await(life.exit) } satisfies Running
  })

type Event = (level: LogLevel, msg: string) => Effect.Effect<void>

/** Tests a line, and for a JSON line also its `msg`, against the readiness pattern. */
const matches = (pattern: RegExp, line: string): boolean => {
  pattern.lastIndex = 0
  if (pattern.test(line)) return true
  if (!line.startsWith("{")) return false
  try {
    const msg: unknown = (JSON.parse(line) as { msg?: unknown }).msg
    pattern.lastIndex = 0
    return typeof msg === "string" && pattern.test(msg)
  } catch {
    return false
  }
}

/**
 * Waits for the main process to end, then for the rest of its group (SIGKILLed unless the supervisor's stop
 * protocol is giving it its `shutdown` time), then for its pipes; removes the pid file and reports the reason.
 */
const watchExit = (life: Life, oomBefore: number, removePid: () => void, event: Event): Effect.Effect<void> =>
  Effect.gen(function*() {
    const { child } = life
    const status = yield* Effect.promise(() => child.exited)
    // Stopped by its supervisor: stopGroup gives the rest of the group its `shutdown` time, then kills it.
    // Otherwise what the main process left behind is an orphan now.
    yield* life.requested === "shutdown" ? awaitGroupGone(child.pid) : killGroup(child.pid, Effect.void)
    yield* Effect.promise(() => child.drained).pipe(Effect.timeoutOption(DRAIN_TIMEOUT))
    const reason = exitReasonOf({
      ...status,
      requested: life.requested,
      stderrTail: child.stderrTail(),
      oomKillsDuring: status.signal === "SIGKILL" ? oomKills() - oomBefore : 0,
    })
    yield* Effect.sync(removePid)
    const how = status.signal !== null ? `signal ${status.signal}` : `code ${status.code}`
    yield* event(reason._tag === "Normal" || reason._tag === "Shutdown" ? "info" : "error", `exited (${how}): ${formatExit(reason)}`)
    yield* Deferred.succeed(life.exit, reason)
  }).pipe(
    // A bug here must not leave the finalizer waiting forever for an exit reason.
    Effect.catchCause((cause) => Deferred.succeed(life.exit, ExitReason.Crash({ detail: `process watcher failed: ${Cause.pretty(cause)}` }))),
    Effect.asVoid,
  )

/** The scope's finalizer: the stop protocol, unless the child is already gone; then waits for its exit reason. */
const stop = (life: Life, options: ProcessOptions, event: Event): Effect.Effect<void> =>
  Effect.gen(function*() {
    const { child } = life
    if (child.exitStatus() === undefined) {
      life.requested ??= "shutdown"
      const signal = options.stopSignal ?? "SIGTERM"
      const shutdown = options.shutdown ?? CHILD_DEFAULTS.shutdown
      yield* event("info", `stopping: ${shutdown === "brutal" ? "SIGKILL" : signal} to process group ${child.pid}`)
      yield* stopGroup({
        pgid: child.pid,
        mainExited: Effect.promise(() => child.exited),
        signal,
        shutdown,
        onEscalate: (ms) => event("warn", `still running ${ms} ms after ${signal}: SIGKILL to process group ${child.pid}`),
      })
    }
    yield* Deferred.await(life.exit)
  })

/**
 * Runs the readiness probe until it passes, the child exits (the start fails with its exit reason) or
 * `readyTimeout` passes (the group is killed and the start fails with Timeout("readiness")).
 */
const awaitReady = (
  life: Life,
  options: ProcessOptions,
  lineMatched: Deferred.Deferred<void>,
  event: Event,
): Effect.Effect<void, ExitReason> =>
  Effect.gen(function*() {
    const probe = options.ready
    const readyTimeout = options.readyTimeout ?? DEFAULT_READY_TIMEOUT
    let lastFailure = `${describeProbe(probe)}: no matching line yet`
    const poll = probe._tag === "line" ? Deferred.await(lineMatched) : Effect.gen(function*() {
      while (true) {
        const result = yield* Effect.result(checkProbe(probe, Math.min(READY_ATTEMPT_TIMEOUT, readyTimeout)))
        if (Result.isSuccess(result)) return
        lastFailure = result.failure
        yield* Effect.sleep(READY_RETRY)
      }
    })
    const outcome = yield* Effect.raceFirst(
      Effect.as(poll, undefined),
      Deferred.await(life.exit),
    ).pipe(Effect.timeoutOption(readyTimeout))
    if (outcome._tag === "None") {
      if (life.child.exitStatus() === undefined) life.requested ??= "readiness"
      yield* event("error", `not ready within ${readyTimeout} ms (${lastFailure}): SIGKILL to process group ${life.child.pid}`)
      yield* killGroup(life.child.pid, Effect.promise(() => life.child.exited))
      return yield* Effect.flatMap(Deferred.await(life.exit), Effect.fail)
    }
    const reason = outcome.value
    if (reason === undefined) return yield* event("info", `ready (${describeProbe(probe)})`)
    return yield* Effect.fail(
      reason._tag === "Normal" ? ExitReason.Crash({ code: 0, detail: "exited with code 0 before it was ready" }) : reason,
    )
  })

/**
 * Every `interval` ms: a stopped main process (state T) or a failed probe is a failure; after `failures`
 * in a row the group is SIGKILLed and the exit is reported as Timeout("liveness").
 */
const watchLiveness = (life: Life, liveness: LivenessOptions, event: Event): Effect.Effect<void> =>
  Effect.gen(function*() {
    const { child } = life
    let failed = 0
    while (child.exitStatus() === undefined) {
      yield* Effect.sleep(liveness.interval)
      if (child.exitStatus() !== undefined) return
      const failure = readStat(child.pid)?.state === "T"
        ? "the process is stopped (state T)"
        : yield* checkProbe(liveness.probe, liveness.timeout).pipe(Effect.flip, Effect.orElseSucceed(() => undefined))
      if (failure === undefined) {
        failed = 0
        continue
      }
      failed += 1
      yield* event("warn", `liveness check failed (${failed} of ${liveness.failures}): ${failure}`)
      if (failed >= liveness.failures && child.exitStatus() === undefined) {
        life.requested ??= "liveness"
        yield* event("error", `not alive after ${failed} failed checks: SIGKILL to process group ${child.pid}`)
        return yield* Effect.sync(() => signalGroup(child.pid, "SIGKILL"))
      }
    }
  })
