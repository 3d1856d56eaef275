// One kernel kind's forkserver (forkserver.py) and its pool of pre-forked idle kernels. `launch` runs one
// incarnation (kernels.ts supervises it); each kernel's `exited` tells how it ended, its forkserver's death included.
import { spawn, type ChildProcess } from "node:child_process"
import { mkdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import type { Socket } from "node:net"
import { Duration, Effect, Schedule } from "effect"
import type { KernelKind } from "../protocol/worker.ts"
import { killAndRemove, type SessionCgroup, type WorkerCgroups } from "./cgroups.ts"
import type { WorkerConfig } from "./config.ts"
import { readLines, writeLine, type LineMessage } from "./lines.ts"
import { log } from "./log.ts"

const FORKSERVER_PY = join(import.meta.dirname, "forkserver.py")
/** The pause before replacing a pooled kernel that died idle, in case it keeps happening. */
const REFILL_PAUSE = Duration.seconds(1)

/** A forked kernel that has connected back over the kernel socket and not yet been given a session. */
export class KernelConn {
  handler: ((message: LineMessage) => void) | undefined
  onClose: (() => void) | undefined
  closed = false
  /** host pid of the kernel (signals, its process group) */
  readonly pid: number
  /** names the fork it came from (the forkserver's spawn request) */
  readonly tag: string
  readonly kind: KernelKind
  readonly socket: Socket
  /** contained: its session's cgroup, made with it; the session that takes the kernel owns it */
  cgroup: SessionCgroup | undefined
  /** how the kernel ended, once its forkserver reaped it (or died, taking it along) */
  exited: Promise<KernelExit> = new Promise(() => undefined)
  constructor(pid: number, tag: string, kind: KernelKind, socket: Socket) {
    this.pid = pid
    this.tag = tag
    this.kind = kind
    this.socket = socket
  }
  send(message: unknown): void {
    writeLine(this.socket, message)
  }
}

/**
 * A contained session's home: on its own size- and inode-capped tmpfs, seen by it alone (container.py). Every
 * session has it at the same path, so the forkserver imports Sage with this home (in a mount namespace of its own):
 * the paths Sage binds at import (DOT_SAGE, each interface's log and caches) are then each session's own.
 */
export const CONTAINED_HOME = "/home/sagews"

/**
 * What a sage forkserver builds once for every session of the data directory: the GAP workspace that each session's
 * GAP starts from (in `gap/`, kernel.py). The forkserver's, 0755, its files 0644: a session reads it (contained, at
 * /run/shared, read-only: container.py) and writes its own workspace, if it saves one, in its home.
 */
export const sharedDirOf = (config: Pick<WorkerConfig, "dataDir">): string => join(config.dataDir, "shared")

/** What every session container of a forkserver shares (container.py: view, hold). */
export interface ContainSpec {
  readonly network: "isolated" | "host"
  /** the home every session has (CONTAINED_HOME); the forkserver imports its kernel's libraries with it */
  readonly home: string
  /** MiB and inodes of each private tmpfs (/tmp, /var/tmp, /dev/shm) and of the home */
  readonly tmpMiB: number
  readonly homeMiB: number
  readonly inodes: number
  /** host directories a session must not see (the data directory: secrets, sockets, logs) */
  readonly hide: ReadonlyArray<string>
  /** the host directory a session sees read-only at /run/shared, though it is in a hidden one (sharedDirOf) */
  readonly shared: string
}

/** What every container of a worker shares: its network mode, its private filesystems, what it hides. */
export const containSpecOf = (config: WorkerConfig): ContainSpec => {
  const { home, tmp, inodes } = config.disk
  return { network: config.network, home: CONTAINED_HOME, homeMiB: home, tmpMiB: tmp, inodes, hide: [config.dataDir], shared: sharedDirOf(config) }
}

/** The children of a process, from /proc (empty when it has none, or is gone). */
const childrenOf = (pid: number): Array<number> => {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").split(" ").filter(Boolean).map(Number)
  } catch {
    return []
  }
}

/** Tries to remove a cgroup whose last processes are still exiting, killing what is left: 50 ms apart, 5 s in all. */
const cgroupRemoval = Schedule.max([Schedule.spaced("50 millis"), Schedule.recurs(100)])

/** Removes a cgroup once its processes are gone (killing what is left); logs one that never empties. */
export const removeWhenEmpty = (cgroup: SessionCgroup): Effect.Effect<void> =>
  Effect.flatMap(killAndRemove(cgroup, cgroupRemoval), (removed) =>
    removed ? Effect.void : Effect.sync(() => log("error", `cgroup ${cgroup.name} still has processes ${cgroup.procs().join(" ")}; left in place`)))

/** How the pool runs its timed and background work: on the worker's runtime, so time is Effect's Clock. */
export interface PoolRunner {
  /** runs `effect` in the background */
  readonly fork: (effect: Effect.Effect<void>) => void
}

export type ChildExit = { readonly code: number } | { readonly signal: string }
export type ForkserverExit = ChildExit & { readonly why: string }
/** a kernel's end: its own exit status, or its forkserver's death (why) */
export type KernelExit = ChildExit | { readonly forkserverDied: string }

interface Fork {
  /** the kernel's host pid once it said hello (0 before) */
  pid: number
  readonly cgroup: SessionCgroup | undefined
  taken: boolean
  readonly exited: Promise<KernelExit>
  readonly resolve: (exit: KernelExit) => void
}

const makeFork = (cgroup: SessionCgroup | undefined): Fork => {
  let resolve!: (exit: KernelExit) => void
  const exited = new Promise<KernelExit>((r) => (resolve = r))
  return { pid: 0, cgroup, taken: false, exited, resolve }
}

/** One run of a forkserver process, from ready to exit. */
export interface Incarnation {
  readonly pid: number
  readonly exit: Promise<ForkserverExit>
}

export class KernelPool {
  readonly kind: KernelKind
  private child: ChildProcess | undefined
  private idle: Array<KernelConn> = []
  private waiters: Array<(conn: KernelConn) => void> = []
  private unconnected = 0
  private tags = 0
  /** every fork not yet reaped, by tag */
  private forks = new Map<string, Fork>()
  private readyWaiters: Array<() => void> = []
  ready = false
  lastFailure: string | undefined
  stats: LineMessage = {}

  private readonly config: WorkerConfig
  private readonly socketPath: string
  private readonly runner: PoolRunner
  /** root: every kernel is a session container with a cgroup of its own (container.py, cgroups.ts) */
  private readonly containers: { readonly spec: ContainSpec; readonly cgroups: WorkerCgroups | undefined } | undefined

  constructor(config: WorkerConfig, kind: KernelKind, socketPath: string, runner: PoolRunner, containers?: KernelPool["containers"]) {
    this.config = config
    this.runner = runner
    this.kind = kind
    this.socketPath = socketPath
    this.containers = containers
  }

  get pid(): number | undefined {
    return this.child?.pid
  }

  whenReady(): Promise<void> {
    return this.ready ? Promise.resolve() : new Promise((resolve) => this.readyWaiters.push(resolve))
  }

  /**
   * Starts one incarnation of the forkserver: resolves once it has imported and warmed up, with its pid and
   * its exit; rejects (with why) if it exits before that. Its supervisor (kernels.ts) restarts it.
   */
  launch(): Promise<Incarnation> {
    // Contained, the forkserver.py mounts a private tmpfs on the sessions' home for itself; otherwise every session
    // of this forkserver shares its home on disk for what Sage binds at import (all run as the worker's uid)
    const home = this.containers?.spec.home ?? join(this.config.dataDir, "run", `${this.config.id.replace(/[^\w.-]/g, "_")}.${this.kind}.home`)
    if (this.containers === undefined) mkdirSync(home, { recursive: true, mode: 0o700 })
    const contain = this.containers !== undefined ? ["--contain", JSON.stringify(this.containers.spec)] : []
    const python = [this.config.python, FORKSERVER_PY, "--kind", this.kind, "--socket", this.socketPath, "--shared", sharedDirOf(this.config), ...contain]
    // As root the forkserver is init of its own pid namespace (and, isolated, of a network namespace with only a
    // loopback that is down): when it dies, the kernel kills everything in it, orphans of user code included;
    // setpriv --pdeathsig ties the namespace to the worker's life even when the worker is SIGKILLed.
    const root = process.getuid?.() === 0
    const net = this.config.network === "isolated" ? ["--net"] : []
    const [command, ...args] = root ? ["setpriv", "--pdeathsig", "SIGKILL", "--", "unshare", ...net, "--pid", "--fork", "--kill-child", "--", ...python] : python
    const child = spawn(command ?? "unshare", args, {
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
      // None of the worker's environment: whatever secrets it holds stay out of every kernel.
      env: {
        PATH: "/usr/bin:/bin",
        HOME: home,
        DOT_SAGE: join(home, ".sage"),
        IPYTHONDIR: join(home, ".ipython"),
        // Matplotlib's font cache takes seconds to build: keep it across restarts (or share it, when given).
        MPLCONFIGDIR: process.env["MPLCONFIGDIR"] ?? join(this.config.dataDir, "run", "matplotlib"),
        LANG: "C.UTF-8",
        MPLBACKEND: "Agg",
        OPENBLAS_NUM_THREADS: "1",
        OMP_NUM_THREADS: "1",
        PYTHONDONTWRITEBYTECODE: "1",
      },
    })
    this.child = child
    const stderrTail: Array<string> = []
    child.stdin?.on("error", () => undefined)
    child.stdout?.on("error", () => undefined)
    child.stderr?.on("error", () => undefined)
    readLines(child.stderr!, () => undefined, (line) => {
      stderrTail.push(line)
      if (stderrTail.length > 3) stderrTail.shift()
      log("warn", `${this.kind} forkserver: ${line}`)
    })
    readLines(child.stdout!, (message) => this.onEvent(message), (line) => log("warn", `${this.kind} forkserver said: ${line}`))
    const exit = new Promise<ForkserverExit>((resolve) => {
      child.on("error", (error) => {
        log("error", `${this.kind} forkserver: ${error.message}`)
        resolve({ code: 127, why: error.message })
      })
      child.on("exit", (code, signal) => {
        const why = signal !== null ? `killed by ${signal}` : `exit ${code}`
        this.lastFailure = stderrTail.length > 0 ? `${why}: ${stderrTail.at(-1)}` : why
        const forks = [...this.forks.values()]
        // the pid namespace went with the forkserver: the cgroups of kernels no session took are empty, or soon
        for (const f of forks) if (!f.taken && f.cgroup !== undefined) this.runner.fork(removeWhenEmpty(f.cgroup))
        this.forks.clear()
        this.ready = false
        this.unconnected = 0
        for (const conn of this.idle) conn.socket.destroy()
        this.idle = []
        for (const f of forks) f.resolve({ forkserverDied: why })
        resolve(signal !== null ? { signal, why } : { code: code ?? 1, why })
      })
    })
    return new Promise((resolve, reject) => {
      this.readyWaiters.push(() => resolve({ pid: child.pid ?? 0, exit }))
      void exit.then(() => reject(new Error(`the ${this.kind} forkserver ended before it was ready (${this.lastFailure ?? "?"})`)))
    })
  }

  private onEvent(message: LineMessage): void {
    switch (message["type"]) {
      case "ready":
        this.ready = true
        this.stats = message
        log("info", `${this.kind} forkserver ready`, { importMs: message["importMs"], warmMs: message["warmMs"] })
        this.readyWaiters.splice(0).forEach((resolve) => resolve())
        this.topUp()
        return
      case "gapWorkspace":
        // built in the background after ready (forkserver.py); until then a session's GAP builds its own, as Sage does
        if (message["ok"] === true) log("info", `${this.kind} forkserver: GAP workspace ready`, { path: message["path"], builtMs: message["ms"] })
        else log("warn", `${this.kind} forkserver: the GAP workspace could not be built; each session's GAP builds its own`, { path: message["path"] })
        return
      case "exited": {
        const tag = message["tag"]
        if (typeof tag !== "string") return
        const fork = this.forks.get(tag)
        this.forks.delete(tag)
        const exit: ChildExit = typeof message["signal"] === "string" ? { signal: message["signal"] } : { code: Number(message["code"]) }
        if (fork === undefined) return
        // a kernel no session took (idle, or never connected): its cgroup is ours to remove
        if (!fork.taken && fork.cgroup !== undefined) this.runner.fork(removeWhenEmpty(fork.cgroup))
        fork.resolve(exit)
        if (fork.pid === 0) {
          // It died before connecting back: fork a replacement, after a pause in case it keeps happening.
          log("warn", `a ${this.kind} kernel died before connecting`, { exit })
          this.unconnected = Math.max(0, this.unconnected - 1)
          this.refillLater()
        }
        return
      }
    }
  }

  /** A kernel of this kind said hello over the kernel socket. */
  deliver(conn: KernelConn): void {
    const fork = this.forks.get(conn.tag)
    if (fork === undefined || fork.pid !== 0) return void conn.socket.destroy() // not a fork of ours, or a second hello
    this.unconnected = Math.max(0, this.unconnected - 1)
    fork.pid = conn.pid
    conn.cgroup = fork.cgroup
    conn.exited = fork.exited
    conn.onClose = () => {
      this.idle = this.idle.filter((c) => c !== conn)
      this.refillLater()
    }
    const waiter = this.waiters.shift()
    if (waiter !== undefined) waiter(conn)
    else this.idle.push(conn)
    this.topUp()
  }

  private refillLater(): void {
    this.runner.fork(Effect.andThen(Effect.sleep(REFILL_PAUSE), Effect.sync(() => this.topUp())))
  }

  /** Waits until the forkserver is ready; fails with why once `forkserverReadyTimeout` has passed. */
  readonly untilReady: Effect.Effect<void, string> = Effect.suspend(() =>
    this.ready ? Effect.void : Effect.promise(() => this.whenReady()).pipe(
      Effect.timeoutOrElse({
        duration: Duration.millis(this.config.forkserverReadyTimeout),
        orElse: () => {
          const last = this.lastFailure !== undefined ? ` (last failure: ${this.lastFailure})` : ""
          return Effect.fail(`the ${this.kind} kernel is not available: its forkserver was not ready within ${this.config.forkserverReadyTimeout} ms${last}`)
        },
      }),
    )
  )

  /**
   * An idle kernel: from the pool when there is one (no fork to wait for), else freshly forked (once the
   * forkserver is ready: see `untilReady`). An abort (the session's start was interrupted) withdraws the request; a
   * kernel that arrives for it anyway is closed.
   */
  async acquire(signal?: AbortSignal): Promise<KernelConn> {
    signal?.throwIfAborted()
    const conn = this.idle.shift()
    if (conn !== undefined) {
      conn.onClose = undefined
      this.take(conn)
      this.topUp()
      return conn
    }
    let waiter: ((conn: KernelConn) => void) | undefined
    const got = new Promise<KernelConn>((resolve, reject) => {
      waiter = (conn) => (signal?.aborted ? conn.socket.destroy() : resolve(conn))
      this.waiters.push(waiter)
      signal?.addEventListener("abort", () => {
        this.waiters = this.waiters.filter((w) => w !== waiter)
        reject(signal.reason)
      }, { once: true })
    })
    this.topUp()
    const taken = await got
    taken.onClose = undefined
    this.take(taken)
    return taken
  }

  /** From here on the session owns the kernel's cgroup (and removes it once the session is over). */
  private take(conn: KernelConn): void {
    const fork = this.forks.get(conn.tag)
    if (fork !== undefined) fork.taken = true
  }

  private topUp(): void {
    if (!this.ready) return
    const want = this.config.pool + this.waiters.length - this.idle.length - this.unconnected
    if (want <= 0) return
    this.unconnected += want
    const kernels = Array.from({ length: want }, () => {
      const tag = `${this.kind}${++this.tags}`
      const cgroup = this.containers?.cgroups?.create()
      this.forks.set(tag, makeFork(cgroup))
      return { tag, cgroup: cgroup?.procsFiles ?? [] }
    })
    writeLine(this.child!.stdin!, { type: "spawn", kernels })
  }

  /** Kills the current incarnation; its kernels die with it (its pid namespace goes). */
  async kill(): Promise<void> {
    const child = this.child
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
    // As root the child is `unshare`, and the forkserver its child, init of the pid namespace. Killing the forkserver
    // alone lets `unshare` exit only once that namespace is empty (its init's exit waits for every process in it);
    // killing both at once would let this resolve while the pool's kernels are still dying.
    const inner = process.getuid?.() === 0 ? childrenOf(child.pid ?? 0) : []
    try {
      if (inner.length > 0) for (const pid of inner) process.kill(pid, "SIGKILL")
      else process.kill(-(child.pid ?? 0), "SIGKILL")
    } catch {
      child.kill("SIGKILL")
    }
    await exited
  }
}
