// The dynamic session supervisor: starts sessions as temporary children (maxChildren per worker and per user),
// enforces their limits on a tick, and after each end waits for the session's cgroup to empty (as root every
// session is a container: container.py, cgroups.ts) before its uid is free again; unprivileged, removes its home.
import { mkdir, rm } from "node:fs/promises"
import { join } from "node:path"
import type { EndReason, KernelKind, SessionKind, SessionLimits } from "../protocol/worker.ts"
import type { SessionCgroup, WorkerCgroups } from "./cgroups.ts"
import { capLimits, type WorkerConfig } from "./config.ts"
import type { ContainSpec, KernelConn, KernelPool } from "./forkserver.ts"
import { KernelSession } from "./kernel-session.ts"
import { log } from "./log.ts"
import type { OutputLog } from "./outlog.ts"
import type { Session, SessionInit, Sink } from "./session.ts"
import { TerminalSession } from "./terminal.ts"
import { killGroup, sweepUid, UidPool } from "./uids.ts"

/** A contained session's home: on its own size- and inode-capped tmpfs, seen by it alone (container.py). */
export const CONTAINED_HOME = "/home/sagews"
/** MiB a session's cgroup may hold beyond its memory limit: the kernel's own pages it copies on write */
const MEMORY_SLACK_MIB = 64
/** tasks of the container itself (holder, init, the kernel's threads) on top of the session's nproc */
const CONTAINER_TASKS = 16
/** rounds (and ms between them) to wait for a session's cgroup to empty after its init is gone */
const EMPTY_ROUNDS = 100
const EMPTY_PAUSE_MS = 20

/** What every container of a worker shares: its network mode, its private filesystems, what it hides. */
export const containSpec = (config: WorkerConfig): ContainSpec => {
  const { home, tmp, inodes } = config.disk
  return { network: config.network, homeMiB: home, tmpMiB: tmp, inodes, hide: [config.dataDir] }
}

const wait = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Kills what is left in the cgroup until it is empty; false if it never empties. */
const emptied = async (cgroup: SessionCgroup): Promise<boolean> => {
  for (let round = 0; round < EMPTY_ROUNDS; round++) {
    if (cgroup.empty()) return true
    cgroup.kill()
    await wait(EMPTY_PAUSE_MS)
  }
  return cgroup.empty()
}

export interface OpenRequest {
  readonly session: string
  readonly kind: SessionKind
  readonly user?: string | undefined
  readonly limits?: SessionLimits | undefined
  readonly cols?: number | undefined
  readonly rows?: number | undefined
}

export class SessionSupervisor {
  readonly sessions = new Map<string, Session>()
  private readonly endedLogs = new Map<string, { log: OutputLog; expires: number }>()
  private readonly byPid = new Map<number, KernelSession>()
  private readonly uids: UidPool | undefined
  private readonly ticker: NodeJS.Timeout
  private counter = 0
  /** opens in progress count against maxSessions too */
  private starting = 0
  private readonly startingByUser = new Map<string, number>()
  private readonly startingIds = new Set<string>()
  readonly isolation: "full" | "reduced"
  /** root: sessions are containers (own namespaces, private view, seccomp); cgroups when the host has them */
  readonly contained: boolean
  stopping = false

  private readonly config: WorkerConfig
  readonly pools: ReadonlyMap<KernelKind, KernelPool>
  private readonly cgroups: WorkerCgroups | undefined

  constructor(config: WorkerConfig, pools: ReadonlyMap<KernelKind, KernelPool>, cgroups: WorkerCgroups | undefined) {
    this.config = config
    this.pools = pools
    this.cgroups = cgroups
    const root = process.getuid?.() === 0
    this.contained = root
    this.uids = root ? new UidPool(config.uidRange.first, config.uidRange.last) : undefined
    this.isolation = root && config.network === "isolated" ? "full" : "reduced"
    this.ticker = setInterval(() => this.tick(), config.tick)
  }

  /** Forkserver events, routed to the session whose kernel it was. */
  kernelExited(pid: number, exit: Parameters<KernelSession["onExit"]>[0]): void {
    this.byPid.get(pid)?.onExit(exit)
  }

  forkserverDied(pids: ReadonlyArray<number>, why: string): void {
    for (const pid of pids) void this.byPid.get(pid)?.processExited({ _tag: "Crashed", detail: `its kernel forkserver died (${why})` })
  }

  /** Starts a session; resolves once it is ready (or throws a user-facing message). */
  async open(request: OpenRequest, sink: Sink): Promise<Session> {
    if (this.stopping) throw new Error("the worker is stopping; open the session on another worker")
    if (this.sessions.has(request.session) || this.endedLogs.has(request.session) || this.startingIds.has(request.session)) throw new Error(`session ${request.session} already exists on this worker`)
    if (this.sessions.size + this.starting >= this.config.maxSessions) throw new Error(`this worker runs its maximum of ${this.config.maxSessions} sessions; close one or try later`)
    const ofUser = (user: string): number => [...this.sessions.values()].filter((s) => s.user === user).length + (this.startingByUser.get(user) ?? 0)
    if (request.user !== undefined && ofUser(request.user) >= this.config.maxSessionsPerUser) {
      throw new Error(`user ${request.user} already has ${this.config.maxSessionsPerUser} sessions on this worker (the per-user maximum); close one first`)
    }
    const uid = this.uids?.allocate()
    if (this.uids !== undefined && uid === undefined) throw new Error("no free session uid is left in the configured range")
    const home = this.contained ? CONTAINED_HOME : join(this.config.dataDir, "sessions", `s${process.pid}-${++this.counter}`)
    const init: SessionInit = {
      id: request.session,
      kind: request.kind,
      user: request.user,
      uid,
      home,
      limits: capLimits(this.config.limits, request.limits),
      killGrace: this.config.killGrace,
      keepMessages: this.config.keepMessages,
      keepBytes: this.config.keepBytes,
      cleanup: (session) => this.cleanup(session),
    }
    this.starting++
    this.startingIds.add(request.session)
    const user = request.user
    if (user !== undefined) this.startingByUser.set(user, (this.startingByUser.get(user) ?? 0) + 1)
    try {
      const session = request.kind === "terminal" ? await this.startTerminal(init, request) : await this.startKernel(init, request.kind)
      session.sink = sink
      this.sessions.set(session.id, session)
      this.shareCpu(session.user)
      void session.ended.then(() => {
        this.sessions.delete(session.id)
        this.shareCpu(session.user)
      })
      log("info", `started ${session.describe()}`, { pid: session.pid })
      // (a session that fails to start has been ended and cleaned up, its uid freed, by processExited)
      return session
    } finally {
      this.starting--
      this.startingIds.delete(request.session)
      if (user !== undefined) {
        const left = (this.startingByUser.get(user) ?? 1) - 1
        if (left > 0) this.startingByUser.set(user, left)
        else this.startingByUser.delete(user)
      }
    }
  }

  private env(home: string, uid: number | undefined): Record<string, string> {
    const user = uid !== undefined ? `u${uid}` : "sagews"
    return { HOME: home, USER: user, LOGNAME: user, PATH: "/usr/local/bin:/usr/bin:/bin", LANG: "C.UTF-8", MPLBACKEND: "Agg", DOT_SAGE: join(home, ".sage"), TMPDIR: home, OPENBLAS_NUM_THREADS: "1" }
  }

  private async startKernel(init: SessionInit, kind: KernelKind): Promise<Session> {
    const conn = await this.acquire(kind).catch((error: unknown) => {
      if (init.uid !== undefined) this.uids?.release(init.uid) // no process ever had it
      throw error
    })
    const session = new KernelSession(init, conn)
    session.cgroup = conn.cgroup
    this.byPid.set(conn.pid, session)
    void session.ended.then(() => this.byPid.delete(conn.pid))
    try {
      this.limitCgroup(session)
      await session.start({ uid: init.uid, env: this.env(init.home, init.uid), nofile: this.config.nofile, nproc: this.config.nproc, fsize: this.config.fsize, contained: this.contained, disk: this.contained ? this.config.disk : undefined })
    } catch (error) {
      session.killAll()
      conn.socket.destroy()
      await session.processExited({ _tag: "Crashed", detail: String(error) })
      throw error
    }
    return session
  }

  private acquire(kind: KernelKind): Promise<KernelConn> {
    const pool = this.pools.get(kind)
    if (pool === undefined) return Promise.reject(new Error(`this worker runs no ${kind} kernel (it runs: ${[...this.pools.keys()].join(", ")})`))
    return pool.acquire()
  }

  private async startTerminal(init: SessionInit, request: OpenRequest): Promise<Session> {
    if (!this.contained) await mkdir(init.home, { recursive: true, mode: 0o700 })
    const session = new TerminalSession(init, {
      env: { ...this.env(init.home, init.uid), TERM: "xterm-256color", SHELL: "/bin/bash" },
      nofile: this.config.nofile,
      nproc: this.config.nproc,
      fsize: this.config.fsize,
      contain: this.contained ? containSpec(this.config) : undefined,
      python: this.config.python,
      cols: request.cols ?? 80,
      rows: request.rows ?? 24,
    })
    session.cgroup = this.cgroups?.create()
    try {
      this.limitCgroup(session)
      session.start()
    } catch (error) {
      await session.processExited({ _tag: "Crashed", detail: String(error) })
      throw error
    }
    return session
  }

  private limitCgroup(session: Session): void {
    session.cgroup?.setLimits({ memoryBytes: (session.limits.memory + MEMORY_SLACK_MIB) * 1024 * 1024, pids: this.config.nproc + CONTAINER_TASKS })
  }

  /** CPU is weighted per user: each of a user's n sessions gets 1/n of one session's weight. */
  private shareCpu(user: string | undefined): void {
    const mine = [...this.sessions.values()].filter((s) => s.cgroup !== undefined && (user === undefined ? s.user === undefined : s.user === user))
    for (const s of mine) s.cgroup?.setCpuShare(user === undefined ? 1 : mine.length)
  }

  /**
   * After the session's main process is gone. Contained, its init is gone too, so its pid namespace is empty and
   * its home, /tmp and shared memory went with its namespaces; its uid is free once its cgroup is empty (or,
   * without cgroups, once no process of its uid is left). Unprivileged, its home on disk is removed.
   */
  private async cleanup(session: Session): Promise<void> {
    let clean = true
    if (session.cgroup !== undefined) {
      clean = await emptied(session.cgroup)
      if (clean) clean = session.cgroup.remove()
    } else {
      if (session.pid !== undefined) killGroup(session.pid, "SIGKILL")
      if (session.uid !== undefined) clean = await sweepUid(session.uid)
    }
    if (!this.contained) await rm(session.home, { recursive: true, force: true }).catch((error: unknown) => log("error", `could not remove ${session.home}: ${String(error)}`))
    if (session.uid !== undefined) {
      if (clean) this.uids?.release(session.uid)
      else log("error", `processes of ${session.describe()} are still there; its uid stays reserved`, { procs: session.cgroup?.procs() })
    }
    this.endedLogs.set(session.id, { log: session.log, expires: Date.now() + this.config.keepEnded })
    log("info", `ended ${session.describe()}`)
  }

  get(id: string): Session | undefined {
    return this.sessions.get(id)
  }

  endedLog(id: string): OutputLog | undefined {
    return this.endedLogs.get(id)?.log
  }

  /** A backend connection went away: its sessions keep running, detached, until resumed or a limit ends them. */
  detach(sink: Sink): void {
    for (const session of this.sessions.values()) if (session.sink === sink) session.sink = undefined
  }

  private tick(): void {
    const now = Date.now()
    for (const session of this.sessions.values()) {
      // An OOM kill anywhere in the session (a child of the kernel too) ends it, named.
      const over = session.endReason !== undefined ? undefined : session.outOfMemory() ? ({ _tag: "OutOfMemory" } as const) : session.overLimit(now)
      if (over !== undefined) {
        log("info", `limit reached: ${session.describe()}`, { limit: over })
        void session.end(over)
      }
    }
    for (const [id, kept] of this.endedLogs) if (kept.expires < now) this.endedLogs.delete(id)
  }

  /** Ends every session with `reason` (WorkerStopped at shutdown) and waits for their cleanup. */
  async stopAll(reason: EndReason): Promise<void> {
    this.stopping = true
    clearInterval(this.ticker)
    await Promise.all([...this.sessions.values()].map((s) => s.end(reason)))
  }

  counts(): { sessions: number; uids: number } {
    return { sessions: this.sessions.size, uids: this.uids?.inUse ?? 0 }
  }
}
