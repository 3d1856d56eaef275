// The dynamic session supervisor: starts sessions as temporary children (maxChildren per worker and per user),
// enforces their limits on a tick, and after each end sweeps its uid, removes its home and frees its uid.
import { mkdir, rm } from "node:fs/promises"
import { join } from "node:path"
import type { EndReason, KernelKind, SessionKind, SessionLimits } from "../protocol/worker.ts"
import { capLimits, type WorkerConfig } from "./config.ts"
import type { KernelPool } from "./forkserver.ts"
import { KernelSession } from "./kernel-session.ts"
import { log } from "./log.ts"
import type { OutputLog } from "./outlog.ts"
import type { Session, SessionInit, Sink } from "./session.ts"
import { TerminalSession } from "./terminal.ts"
import { killGroup, removeFilesOf, sweepUid, UidPool } from "./uids.ts"

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
  private readonly fileSweeps = new Set<Promise<unknown>>()
  readonly isolation: "full" | "reduced"
  stopping = false

  private readonly config: WorkerConfig
  readonly pools: ReadonlyMap<KernelKind, KernelPool>

  constructor(config: WorkerConfig, pools: ReadonlyMap<KernelKind, KernelPool>) {
    this.config = config
    this.pools = pools
    const root = process.getuid?.() === 0
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
    const home = join(this.config.dataDir, "sessions", uid !== undefined ? String(uid) : `s${process.pid}-${++this.counter}`)
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
      void session.ended.then(() => this.sessions.delete(session.id))
      log("info", `started ${session.describe()}`, { pid: session.pid })
      return session
    } catch (error) {
      if (uid !== undefined) {
        await sweepUid(uid)
        this.uids?.release(uid)
      }
      await rm(home, { recursive: true, force: true })
      throw error
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
    const pool = this.pools.get(kind)
    if (pool === undefined) throw new Error(`this worker runs no ${kind} kernel (it runs: ${[...this.pools.keys()].join(", ")})`)
    const conn = await pool.acquire()
    const session = new KernelSession(init, conn)
    this.byPid.set(conn.pid, session)
    void session.ended.then(() => this.byPid.delete(conn.pid))
    try {
      await session.start({ uid: init.uid, env: this.env(init.home, init.uid), nofile: this.config.nofile, nproc: this.config.nproc, fsize: this.config.fsize })
    } catch (error) {
      killGroup(conn.pid, "SIGKILL")
      conn.socket.destroy()
      await session.processExited({ _tag: "Crashed", detail: String(error) })
      throw error
    }
    return session
  }

  private async startTerminal(init: SessionInit, request: OpenRequest): Promise<Session> {
    await mkdir(init.home, { recursive: true, mode: 0o700 })
    const session = new TerminalSession(init, {
      env: { ...this.env(init.home, init.uid), TERM: "xterm-256color", SHELL: "/bin/bash" },
      nofile: this.config.nofile,
      nproc: this.config.nproc,
      fsize: this.config.fsize,
      isolated: this.isolation === "full",
      cols: request.cols ?? 80,
      rows: request.rows ?? 24,
    })
    await session.start()
    return session
  }

  /** After the kernel is gone: nothing of its uid may remain, then its home goes, then its uid is free. */
  private async cleanup(session: Session): Promise<void> {
    if (session.pid !== undefined) killGroup(session.pid, "SIGKILL")
    let clean = true
    if (session.uid !== undefined) clean = await sweepUid(session.uid)
    await rm(session.home, { recursive: true, force: true }).catch((error: unknown) => log("error", `could not remove ${session.home}: ${String(error)}`))
    if (session.uid !== undefined) {
      const uid = session.uid
      if (!clean) log("error", `processes of uid ${uid} survived the sweep; the uid stays reserved`)
      // Files the session left in /tmp and friends go before its uid can be given to anyone else.
      const sweep = removeFilesOf(uid).then(() => clean && this.uids?.release(uid))
      this.fileSweeps.add(sweep)
      void sweep.finally(() => this.fileSweeps.delete(sweep))
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
      const over = session.endReason === undefined ? session.overLimit(now) : undefined
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
    await Promise.all([...this.fileSweeps])
  }

  counts(): { sessions: number; uids: number } {
    return { sessions: this.sessions.size, uids: this.uids?.inUse ?? 0 }
  }
}
