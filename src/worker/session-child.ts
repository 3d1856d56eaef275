// One session as a temporary child of the worker's `sessions` supervisor. Its start leases a uid, takes a kernel
// from the pool (or starts a terminal) in its own cgroup and applies the sandbox; its exit is the first of the
// kernel's own end and each limit (a limit is told at once: the running execution's `done`, then nothing more of the
// kernel); its scope's release kills it (actors/signals.ts), waits for the cgroup to empty, frees the uid, and only
// then sends the one `ended` frame with the reason.
import { mkdir, rm } from "node:fs/promises"
import { Deferred, Duration, Effect, Option, Schedule, type Scope } from "effect"
import { processGone } from "../../actors/procstat.ts"
import { escalate, signalGroup, signalProcess } from "../../actors/signals.ts"
import type { ChildSpec, Running } from "../../supervisors/child.ts"
import { ExitReason, isAbnormal } from "../../supervisors/exit.ts"
import { closeReason } from "../../supervisors/slot.ts"
import { limitOf, toWire } from "../protocol/reason.ts"
import { type KernelKind, LimitName, type SessionKind, type SessionLimits } from "../protocol/worker.ts"
import { killAndRemove, type SessionCgroup, type WorkerCgroups } from "./cgroups.ts"
import { capLimits, type WorkerConfig } from "./config.ts"
import { CONTAINED_HOME, type ContainSpec, type KernelConn } from "./forkserver.ts"
import { type HomeFileContent, KernelSession, reasonOfExit } from "./kernel-session.ts"
import { Activity, cgroupLimits, timeLimits } from "./limits.ts"
import { log } from "./log.ts"
import type { Session, Sink } from "./session.ts"
import { TerminalSession } from "./terminal.ts"
import { sweepUid, type UidPool } from "./uids.ts"

/** MiB a session's cgroup may hold beyond its memory limit: the kernel's own pages it copies on write */
const MEMORY_SLACK_MIB = 64
/** tasks of the container itself (holder, init, the kernel's threads) on top of the session's nproc */
const CONTAINER_TASKS = 16
/**
 * How long a session's cgroup gets to empty after its init is gone, killing what is left on each round: up to 6 s.
 * Tearing down a Sage kernel's address space is slow; 200 sessions ended at once took about 3 s on 2 cores.
 */
const CGROUP_EMPTY_MS = 6_000
const emptyRounds = Schedule.max([Schedule.spaced("25 millis"), Schedule.recurs(CGROUP_EMPTY_MS / 25)])
/** A kernel whose socket closed but which is still running after this is alive but deaf, and cannot be used. */
const DEAF_AFTER = Duration.millis(200)
/**
 * How long to wait for the forkserver's exit status once a kernel's socket has closed. It normally comes within
 * milliseconds and names the reason (CpuLimit, Killed); on a saturated machine it took over 2 s. A forkserver that
 * dies ends its sessions by itself, so this fallback only matters when the status is lost, and may be generous.
 */
const EXIT_STATUS_WAIT = Duration.seconds(10)

export interface OpenRequest {
  readonly session: string
  readonly kind: SessionKind
  readonly user?: string | undefined
  readonly limits?: SessionLimits | undefined
  readonly cols?: number | undefined
  readonly rows?: number | undefined
  /** a kernel's: files to put into its home before it runs anything (the backend's `file` frames) */
  readonly files?: ReadonlyArray<HomeFileContent> | undefined
  /** a stateless `run`'s session: its backend's request waits for it from the start (Session.stateless) */
  readonly stateless?: boolean | undefined
}

/** What every session of a worker shares: set up once by the Sessions service. */
export interface SessionDeps {
  readonly config: WorkerConfig
  /** root: sessions are containers (own namespaces, private view, seccomp) */
  readonly contained: boolean
  readonly containSpec: ContainSpec
  readonly uids: UidPool | undefined
  readonly cgroups: WorkerCgroups | undefined
  readonly acquire: (kind: KernelKind) => Effect.Effect<KernelConn, string>
  /** a home on disk for an unprivileged session */
  readonly newHome: () => string
  readonly onLive: (session: Session) => void
  readonly onGone: (session: Session, reason: ExitReason) => void
}

/** How long a session child may take to stop: the escalation's steps plus the cgroup emptying. */
export const sessionShutdown = (config: WorkerConfig): number => 3 * config.killGrace + CGROUP_EMPTY_MS + 500

const env = (home: string, uid: number | undefined): Record<string, string> => {
  const user = uid !== undefined ? `u${uid}` : "sagews"
  // Every program's state under the session's own home: Sage's (and through it GAP's, PARI's, Maxima's and
  // Singular's), IPython's, Matplotlib's; and its temp files, on the same capped tmpfs
  return {
    HOME: home,
    USER: user,
    LOGNAME: user,
    PATH: "/usr/local/bin:/usr/bin:/bin",
    LANG: "C.UTF-8",
    MPLBACKEND: "Agg",
    DOT_SAGE: `${home}/.sage`,
    IPYTHONDIR: `${home}/.ipython`,
    MPLCONFIGDIR: `${home}/.config/matplotlib`,
    TMPDIR: home,
    OPENBLAS_NUM_THREADS: "1",
  }
}

const crash = (detail: string) => ExitReason.Crash({ detail })

const setCgroupLimits = (cgroup: SessionCgroup | undefined, memoryMiB: number, nproc: number): Effect.Effect<void, ExitReason> =>
  cgroup === undefined
    ? Effect.void
    : Effect.try({
      try: () => cgroup.setLimits({ memoryBytes: (memoryMiB + MEMORY_SLACK_MIB) * 1024 * 1024, pids: nproc + CONTAINER_TASKS }),
      catch: (e) => crash(`cannot set the session's cgroup limits: ${e instanceof Error ? e.message : String(e)}`),
    })

/** The limit an exit is, named as the wire names it (`limitOf`: wall, idle, exec, cpu, memory); else undefined. */
const limitOfExit = (reason: ExitReason): LimitName | undefined => {
  const limit = LimitName.safeParse(limitOf(toWire(reason)))
  return limit.success ? limit.data : undefined
}

/**
 * A session ended on purpose (closed, a finished run, its worker stopping) is killed at once: its home, /tmp and
 * everything else it had go with its namespaces, so a polite exit would save nothing and cost a Sage teardown.
 * So is one ended by a limit: its user has had the `done` that names the limit and hears nothing more of the kernel,
 * so an interrupt would only make it print what nobody reads (Sage's cysignals answers SIGQUIT with a backtrace and
 * gdb). A failure (a crash, a deaf kernel) first interrupts, then SIGQUITs, then SIGKILLs.
 */
const killAtOnce = (reason: ExitReason): boolean => !isAbnormal(reason) || limitOfExit(reason) !== undefined

/** One session child. `ready` hears the session once it runs (the caller replies `opened`). */
export const sessionChild = (deps: SessionDeps, request: OpenRequest, sink: Sink, ready: (session: Session) => void): ChildSpec => ({
  id: request.session,
  restart: "temporary",
  shutdown: sessionShutdown(deps.config),
  start: Effect.gen(function*() {
    const { config } = deps
    const limits = capLimits(config.limits, request.limits)
    const activity = yield* Activity.make
    const exit = yield* Deferred.make<ExitReason>()
    let session: Session | undefined
    /** set once the session ran: a start that failed is answered with an error, not `ended` */
    let wentLive = false
    /** whether every process of the session is gone (its uid may then be reused) */
    let clean = false

    // Registered first, so it runs last: the user hears `ended` only once nothing of the session is left.
    yield* Effect.addFinalizer((closed) =>
      Effect.gen(function*() {
        if (session === undefined || !wentLive) return
        const own = yield* Deferred.poll(exit)
        const reason = Option.isSome(own) ? yield* own.value : closeReason(closed)
        session.finish(reason)
        deps.onGone(session, reason)
      })
    )

    const uid = yield* Effect.acquireRelease(
      Effect.suspend(() => {
        if (deps.uids === undefined) return Effect.succeed(undefined)
        const uid = deps.uids.allocate()
        return uid === undefined ? Effect.fail(crash("no free session uid is left in the configured range")) : Effect.succeed(uid)
      }),
      (uid) =>
        Effect.gen(function*() {
          if (uid === undefined) return
          if (!deps.contained || deps.cgroups === undefined) clean = yield* sweepUid(uid)
          if (clean) deps.uids?.release(uid)
          else log("error", `processes of session ${request.session} (uid ${uid}) are still there; its uid stays reserved`)
        }),
    )
    const home = deps.contained ? CONTAINED_HOME : deps.newHome()
    if (!deps.contained) {
      yield* Effect.addFinalizer(() => Effect.promise(() => rm(home, { recursive: true, force: true }).catch((e: unknown) => log("error", `could not remove ${home}: ${String(e)}`))))
    }
    const init = { id: request.session, kind: request.kind, user: request.user, uid, home, limits, keepMessages: config.keepMessages, keepBytes: config.keepBytes, activity }
    // The first reason settled is the exit. A limit is told in the same step, before any more of the kernel's
    // output is read: the running execution's `done` names it, and the session prints nothing after.
    const settle = (reason: ExitReason) =>
      Effect.sync(() => {
        if (!Deferred.doneUnsafe(exit, Effect.succeed(reason))) return
        const limit = limitOfExit(reason)
        if (limit !== undefined) session?.limitReached(limit)
      })
    const watch = (effect: Effect.Effect<ExitReason>) => Effect.forkScoped(Effect.flatMap(effect, settle))
    /** the session's processes, known as soon as its kernel or shell exists */
    let proc: Proc | undefined

    // Registered before the kernel is taken, so it runs before the uid goes back: end the kernel the way the
    // reason asks, then wait for its cgroup to empty (a start that failed half-way is cleaned up the same way).
    yield* Effect.addFinalizer((closed) =>
      Effect.gen(function*() {
        if (session !== undefined) session.ended = true
        // no process ever had the uid
        if (proc === undefined) return void (clean = true)
        const { pid, cgroup, gone, isGone } = proc
        const own = yield* Deferred.poll(exit)
        const reason = Option.isSome(own) ? yield* own.value : closeReason(closed)
        // The worker is stopping: its clients hear the end now, while it can still tell them; the kill and the
        // wait for the cgroup follow (200 Sage sessions take seconds to tear down, more on a loaded machine).
        if (session !== undefined && wentLive && (reason._tag === "WorkerStopped" || reason._tag === "Shutdown")) session.finish(reason)
        // Once reaped, its pid may be another process's: a step signals only a kernel still there.
        const step = (act: (pid: number) => void) => Effect.sync(() => pid === undefined || isGone() || act(pid))
        const killAll = Effect.sync(() => (cgroup !== undefined ? cgroup.kill() : pid !== undefined && !isGone() && signalGroup(pid, "SIGKILL")))
        const steps = session === undefined || killAtOnce(reason)
          ? [killAll]
          : [step((p) => signalProcess(p, "SIGINT")), step((p) => signalGroup(p, "SIGQUIT")), killAll]
        yield* escalate(steps, Duration.millis(config.killGrace), gone)
        if (cgroup !== undefined) clean = yield* killAndRemove(cgroup, emptyRounds)
        else if (uid === undefined) clean = true
      })
    )

    const made = (s: Session, p: Proc) => {
      session = s
      proc = p
    }
    const { connClosed } = request.kind === "terminal"
      ? yield* startTerminal(deps, request, init, made)
      : yield* startKernel(deps, request.kind, init, request.files ?? [], made)
    const live = session!
    const running = proc!
    live.sink = sink
    // before it is live, so no resume in between can take the run from the request that waits for it
    live.stateless = request.stateless === true

    // The exit: the first of the kernel's own end, the time limits and what its cgroup says.
    yield* watch(running.ended)
    yield* watch(timeLimits(activity, limits, live.startedAt))
    const cgroup = running.cgroup
    if (cgroup !== undefined) yield* watch(cgroupLimits({ oomKills: () => cgroup.oomKills(), cpuSeconds: () => cgroup.cpuSeconds() }, limits))
    // A dying kernel closes its socket a moment before it is reaped; one still running after DEAF_AFTER is alive
    // but deaf (its socket closed, or the worker cut it for an oversized line), and the session is over.
    yield* watch(Effect.gen(function*() {
      yield* connClosed
      yield* Effect.sleep(DEAF_AFTER)
      if (running.pid !== undefined && !processGone(running.pid)) return crash("the kernel's connection to the worker closed")
      yield* Effect.sleep(EXIT_STATUS_WAIT)
      return crash("the kernel closed its connection")
    }))

    wentLive = true
    deps.onLive(live)
    ready(live)
    return { pid: live.pid, exit: Deferred.await(exit) } satisfies Running
  }),
})

/** A session's processes: the kernel's (or shell's) host pid, its cgroup, and its end. */
interface Proc {
  readonly pid: number | undefined
  readonly cgroup: SessionCgroup | undefined
  /** the kernel's own end, as a reason (the OOM killer's SIGKILL told apart by the cgroup) */
  readonly ended: Effect.Effect<ExitReason>
  /** completes once the kernel (or shell) has exited and was reaped */
  readonly gone: Effect.Effect<void>
  readonly isGone: () => boolean
}

const procOf = (pid: number | undefined, cgroup: SessionCgroup | undefined, end: Promise<ExitReason>): Proc => {
  let over = false
  void end.then(() => (over = true))
  const natural = Effect.promise(() => end)
  const ended = Effect.map(natural, (reason) => ((cgroup?.oomKills() ?? 0) > 0 ? ExitReason.OutOfMemory() : reason))
  return { pid, cgroup, ended, gone: Effect.asVoid(natural), isGone: () => over }
}

const startKernel = (
  deps: SessionDeps,
  kind: KernelKind,
  init: ConstructorParameters<typeof KernelSession>[0],
  files: ReadonlyArray<HomeFileContent>,
  made: (session: Session, proc: Proc) => void,
): Effect.Effect<{ connClosed: Effect.Effect<void> }, ExitReason, Scope.Scope> =>
  Effect.gen(function*() {
    const { config } = deps
    const conn = yield* deps.acquire(kind).pipe(Effect.mapError(crash))
    const session = new KernelSession(init, conn)
    session.cgroup = conn.cgroup
    made(session, procOf(conn.pid, conn.cgroup, conn.exited.then(reasonOfExit)))
    const closed = new Promise<void>((resolve) => (session.onConnClosed = resolve))
    yield* setCgroupLimits(conn.cgroup, init.limits.memory, config.nproc)
    yield* session.setup({
      uid: init.uid,
      env: env(init.home, init.uid),
      nofile: config.nofile,
      nproc: config.nproc,
      fsize: config.fsize,
      contained: deps.contained,
      disk: deps.contained ? config.disk : undefined,
      files,
    }).pipe(Effect.mapError((e) => crash(e.message)))
    return { connClosed: Effect.promise(() => closed) }
  })

const startTerminal = (
  deps: SessionDeps,
  request: OpenRequest,
  init: ConstructorParameters<typeof TerminalSession>[0],
  made: (session: Session, proc: Proc) => void,
): Effect.Effect<{ connClosed: Effect.Effect<void> }, ExitReason, Scope.Scope> =>
  Effect.gen(function*() {
    const { config } = deps
    if (!deps.contained) yield* Effect.promise(() => mkdir(init.home, { recursive: true, mode: 0o700 }))
    const session = new TerminalSession(init, {
      env: { ...env(init.home, init.uid), TERM: "xterm-256color", SHELL: "/bin/bash" },
      nofile: config.nofile,
      nproc: config.nproc,
      fsize: config.fsize,
      contain: deps.contained ? deps.containSpec : undefined,
      python: config.python,
      cols: request.cols ?? 80,
      rows: request.rows ?? 24,
    })
    session.cgroup = deps.cgroups?.create()
    yield* setCgroupLimits(session.cgroup, init.limits.memory, config.nproc)
    yield* Effect.try({ try: () => session.start(), catch: (e) => crash(`the terminal did not start: ${e instanceof Error ? e.message : String(e)}`) }).pipe(
      Effect.tapError(() => Effect.sync(() => session.cgroup?.remove())),
    )
    made(session, procOf(session.pid, session.cgroup, session.exited))
    return { connClosed: Effect.never }
  })
