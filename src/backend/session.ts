// One stateful session as this backend routes it: its worker, the browser connection it is attached to, the
// highest seq seen. Output goes out in seq order, never twice to one attachment; a resume replays from the worker's log.
import type { WorkerFrame } from "../protocol/worker.ts"
import { limitOf, type ServerMessage, type SessionKind } from "../protocol/browser.ts"
import type { BackendContext } from "./context.ts"
import type { SessionHandler } from "./router.ts"

/** A browser connection as a session sees it. */
export interface Attachment {
  readonly id: string
  send(message: ServerMessage): void
}

/** ms a session with no browser attached keeps this backend's admission slot before the route is dropped */
const DETACHED_GRACE = 60_000

export class SessionRoute implements SessionHandler {
  readonly id: string
  readonly workerId: string
  readonly kernel: SessionKind
  readonly client: string
  attached: Attachment | undefined
  /** highest seq received from the worker */
  lastSeq = 0
  ended = false
  /** seq up to which the current attachment has everything */
  private forwarded = 0
  /** waiting for the worker's `resumed`: live frames before it are in the replay anyway */
  private replaying = false
  private resumeRequest: string | undefined
  private workerLost: NodeJS.Timeout | undefined
  private detachTimer: NodeJS.Timeout | undefined
  private readonly execs = new Map<string, () => void>()
  private releaseSession: (() => void) | undefined
  private readonly ctx: BackendContext
  /** set while the worker has not answered an `open` yet */
  opening: { opened: () => void; refused: (message: string) => void } | undefined
  /** called once when the route is dropped (ended, or detached too long) */
  onDrop: (route: SessionRoute) => void = () => undefined

  constructor(ctx: BackendContext, init: { id: string; workerId: string; kernel: SessionKind; client: string; release?: (() => void) | undefined }) {
    this.ctx = ctx
    this.id = init.id
    this.workerId = init.workerId
    this.kernel = init.kernel
    this.client = init.client
    this.releaseSession = init.release
    ctx.pool.addLoad(this.workerId, 1, "session")
  }

  private send(message: ServerMessage): void {
    this.attached?.send(message)
  }

  /** Attach `to` (replacing any earlier connection) and replay from `fromSeq`. */
  resume(to: Attachment, requestId: string, fromSeq: number): boolean {
    const worker = this.ctx.pool.client(this.workerId)
    if (worker === undefined) return false
    this.attach(to)
    this.forwarded = fromSeq - 1
    this.replaying = true
    this.resumeRequest = requestId
    worker.send({ type: "resume", session: this.id, fromSeq })
    return true
  }

  attach(to: Attachment): void {
    if (this.detachTimer !== undefined) clearTimeout(this.detachTimer)
    this.detachTimer = undefined
    this.attached = to
  }

  detach(from: Attachment): void {
    if (this.attached !== from) return
    this.attached = undefined
    this.detachTimer = setTimeout(() => this.drop(), DETACHED_GRACE)
    this.detachTimer.unref()
  }

  addExec(id: string, release: () => void): void {
    this.execs.get(id)?.()
    this.execs.set(id, release)
  }

  frame(frame: WorkerFrame): void {
    const opening = this.opening
    if (opening !== undefined && (frame.type === "opened" || frame.type === "error")) {
      this.opening = undefined
      if (frame.type === "opened") return opening.opened()
      opening.refused(frame.message)
      return this.end("OpenFailed")
    }
    switch (frame.type) {
      case "resumed":
        this.replaying = false
        if (this.resumeRequest !== undefined) {
          this.send({ type: "resumed", id: this.resumeRequest, session: this.id, kernel: this.kernel, fromSeq: frame.fromSeq, lastSeq: frame.lastSeq })
          this.resumeRequest = undefined
        }
        this.lastSeq = Math.max(this.lastSeq, frame.lastSeq)
        return
      case "output":
        this.lastSeq = Math.max(this.lastSeq, frame.seq)
        if (frame.msg.kind === "done" && frame.id !== undefined) this.endExec(frame.id)
        if (this.replaying || frame.seq <= this.forwarded) return
        this.forwarded = frame.seq
        this.send({ type: "output", session: this.id, seq: frame.seq, ...(frame.id !== undefined ? { id: frame.id } : {}), msg: frame.msg })
        return
      case "ended": {
        this.lastSeq = Math.max(this.lastSeq, frame.seq)
        const limit = limitOf(frame.reason)
        if (!this.replaying && frame.seq > this.forwarded) {
          this.forwarded = frame.seq
          this.send({ type: "ended", session: this.id, seq: frame.seq, reason: frame.reason, message: frame.message, ...(limit !== undefined ? { limit } : {}) })
        }
        if (!this.replaying) this.end(frame.reason._tag)
        return
      }
      case "error":
        if (this.replaying && /^no session /.test(frame.message)) {
          // The worker no longer has it (restarted, or ended long ago): the client is told, then the route ends.
          if (this.resumeRequest !== undefined) {
            this.send({ type: "error", id: this.resumeRequest, code: "unknown_session", session: this.id, message: `session ${this.id} is gone: ${frame.message}` })
          } else {
            this.send({ type: "ended", session: this.id, seq: this.forwarded + 1, reason: { _tag: "WorkerStopped" }, message: "the worker running this session restarted and the session's state is lost; start a new session" })
          }
          this.resumeRequest = undefined
          this.replaying = false
          return this.end("Gone")
        }
        if (/^output before seq/.test(frame.message)) return
        this.send({ type: "error", id: frame.id ?? null, code: "failed", session: this.id, message: frame.message })
        return
    }
  }

  /** The connection to our worker dropped: wait for it to come back, then resume from what we have. */
  lost(why: string): void {
    if (this.ended || this.workerLost !== undefined) return
    this.workerLost = setTimeout(() => {
      const seq = this.lastSeq + 1
      this.send({ type: "ended", session: this.id, seq, reason: { _tag: "WorkerStopped" }, message: `the worker running this session stopped (${why}) and did not come back within ${this.ctx.options.workerLostGrace / 1000} s` })
      this.end("WorkerStopped")
    }, this.ctx.options.workerLostGrace)
    this.workerLost.unref()
  }

  /** Our worker is connected again: ask for everything after the last seq we saw. */
  reconnected(): void {
    if (this.workerLost === undefined || this.ended) return
    clearTimeout(this.workerLost)
    this.workerLost = undefined
    const worker = this.ctx.pool.client(this.workerId)
    if (worker === undefined) return this.lost("not connected")
    this.replaying = true
    this.resumeRequest = undefined
    worker.send({ type: "resume", session: this.id, fromSeq: this.forwarded + 1 })
  }

  private endExec(id: string): void {
    this.execs.get(id)?.()
    this.execs.delete(id)
  }

  private end(reason: string): void {
    if (this.ended) return
    this.ended = true
    void this.ctx.registry.ended(this.id, reason)
    this.drop()
  }

  private drop(): void {
    if (this.workerLost !== undefined) clearTimeout(this.workerLost)
    if (this.detachTimer !== undefined) clearTimeout(this.detachTimer)
    for (const release of this.execs.values()) release()
    this.execs.clear()
    this.releaseSession?.()
    this.releaseSession = undefined
    if (this.ctx.router.get(this.id) === this) {
      this.ctx.router.delete(this.id, this)
      this.ctx.pool.addLoad(this.workerId, -1, "session")
    }
    this.onDrop(this)
  }
}
