// One stateful session as this backend routes it: its worker, the browser connection it is attached to, the
// highest seq seen. Output goes out in seq order, never twice to one attachment; a resume replays from the worker's log.
// A connection the session is taken from (another one resumed it) is told so, and still gets the session's `ended`.
// Its grace periods (detached, worker lost) run on the backend's Clock (ctx.after).
import { randomUUID } from "node:crypto"
import type { EndedFrame, WorkerFrame } from "../protocol/worker.ts"
import { DETACHED_REASON, limitOf, type EndReason, type ErrorMessage, type ServerMessage, type SessionKind } from "../protocol/browser.ts"
import type { BackendContext } from "./context.ts"
import { endSentence } from "../protocol/reason.ts"
import type { SessionHandler } from "./router.ts"

/** A browser connection as a session sees it. */
export interface Attachment {
  readonly id: string
  send(message: ServerMessage): void
}

/** ms a session with no browser attached keeps this backend's admission slot before the route is dropped */
const DETACHED_GRACE = 60_000
/** ms to wait for the worker's answer to a question (the kernel itself gives up after 20 s on files, 10 s on completions) */
const FILES_WAIT = 30_000

/** The worker's answer to a question about a session: its files (`listFiles`, `readFile`), its namespace (`complete`, `inspect`). */
export type SessionAnswer = Extract<WorkerFrame, { type: "fileList" | "fileData" | "completions" | "inspection" | "error" }>
const ANSWERS: ReadonlySet<WorkerFrame["type"]> = new Set(["fileList", "fileData", "completions", "inspection", "error"])
const isAnswer = (frame: WorkerFrame): frame is SessionAnswer => ANSWERS.has(frame.type)

/**
 * The `session_ended` error about `session`: why it ended as its `ended` said, when this backend heard it, else
 * `otherwise` (what is known) with `reason`, if that is known.
 */
export const endedError = (id: string | null, session: string, heard: EndedFrame | undefined, otherwise: { readonly what: string; readonly reason?: EndReason }): ErrorMessage => {
  const why = heard?.message ?? otherwise.what
  const reason = heard?.reason ?? otherwise.reason
  return {
    type: "error",
    id,
    code: "session_ended",
    session,
    message: `session ${session} has ended: ${why}${/new session/.test(why) ? "" : "; open a new session to continue"}`,
    ...(reason !== undefined ? { reason } : {}),
  }
}

export class SessionRoute implements SessionHandler {
  readonly id: string
  readonly workerId: string
  readonly kernel: SessionKind
  readonly client: string
  attached: Attachment | undefined
  /** connections the session was taken from (they got `detached`): they are sent its `ended` too */
  private readonly formers = new Set<Attachment>()
  /** highest seq received from the worker */
  lastSeq = 0
  ended = false
  /** seq up to which the current attachment has everything */
  private forwarded = 0
  /** waiting for the worker's `resumed`: live frames before it are in the replay anyway */
  private replaying = false
  private resumeRequest: string | undefined
  /** cancels the worker-lost grace period, while it runs */
  private workerLost: (() => void) | undefined
  /** cancels the detached grace period, while it runs */
  private detachTimer: (() => void) | undefined
  private readonly execs = new Map<string, () => void>()
  /** questions waiting for the worker's answer, by the id they were sent with */
  private readonly asked = new Map<string, (frame: SessionAnswer | undefined) => void>()
  private releaseSession: (() => void) | undefined
  private readonly ctx: BackendContext
  /** set while the worker has not answered an `open` yet */
  opening: { opened: () => void; refused: (message: string) => void } | undefined
  /** called once when the route is dropped (ended, or detached too long) */
  onDrop: (route: SessionRoute) => void = () => undefined

  /** the registry had recorded its end before this route was made (a resume of an ended session, to replay its end) */
  private readonly endedBefore: boolean

  constructor(ctx: BackendContext, init: { id: string; workerId: string; kernel: SessionKind; client: string; release?: (() => void) | undefined; endedBefore?: boolean }) {
    this.ctx = ctx
    this.endedBefore = init.endedBefore ?? false
    this.id = init.id
    this.workerId = init.workerId
    this.kernel = init.kernel
    this.client = init.client
    this.releaseSession = init.release
    ctx.links.addLoad(this.workerId, 1, "session")
  }

  private send(message: ServerMessage): void {
    this.attached?.send(message)
  }

  /** The session's end, to the attached connection and, once, to those it was taken from. */
  private sendEnd(message: Extract<ServerMessage, { type: "ended" }>, toAttached: boolean): void {
    if (toAttached) this.send(message)
    for (const former of this.formers) if (former !== this.attached) former.send(message)
    this.formers.clear()
  }

  /** Attach `to` (replacing any earlier connection, which is told) and replay from `fromSeq`. */
  resume(to: Attachment, requestId: string, fromSeq: number): boolean {
    const worker = this.ctx.links.client(this.workerId)
    if (worker === undefined) return false
    this.attach(to)
    this.forwarded = fromSeq - 1
    this.replaying = true
    this.resumeRequest = requestId
    worker.send({ type: "resume", session: this.id, fromSeq })
    return true
  }

  attach(to: Attachment): void {
    this.detachTimer?.()
    this.detachTimer = undefined
    if (this.attached !== undefined && this.attached !== to) this.tellDetached(this.attached)
    this.formers.delete(to)
    this.attached = to
  }

  private tellDetached(from: Attachment): void {
    this.formers.add(from)
    from.send({
      type: "detached",
      session: this.id,
      reason: DETACHED_REASON,
      message: `session ${this.id} was resumed by another connection, which gets its output from now on; send resume here to take it back`,
    })
  }

  /**
   * A connection of another backend resumed the session (the registry says so): its output goes there now. While a
   * resume of ours is in flight the news is older than it (the worker attaches whoever asked last), so it is ignored.
   */
  attachedElsewhere(): void {
    if (this.ended || this.resumeRequest !== undefined || this.attached === undefined) return
    this.tellDetached(this.attached)
    this.detach(this.attached)
  }

  detach(from: Attachment): void {
    if (this.attached !== from) {
      this.formers.delete(from)
      return
    }
    this.attached = undefined
    this.detachTimer = this.ctx.after(DETACHED_GRACE, () => this.drop())
  }

  /**
   * Sends a question (`send` names it by `id`) and feeds the worker's answers to `take` until it returns a value;
   * `{ error }` when the worker refused (its message), did not answer in time, or the session ended or was lost.
   */
  ask<T>(send: (id: string) => void, take: (frame: Exclude<SessionAnswer, { type: "error" }>) => T | undefined): Promise<T | { readonly error: string; readonly worker: boolean }> {
    const id = randomUUID()
    return new Promise((resolve) => {
      const done = (result: T | { readonly error: string; readonly worker: boolean }): void => {
        this.asked.delete(id)
        cancel()
        resolve(result)
      }
      const cancel = this.ctx.after(FILES_WAIT, () => done({ error: `the worker did not answer within ${FILES_WAIT / 1000} s; try again`, worker: false }))
      this.asked.set(id, (frame) => {
        if (frame === undefined) return done({ error: "the session ended, or its worker was lost, before the answer came", worker: false })
        if (frame.type === "error") return done({ error: frame.message, worker: true })
        const value = take(frame)
        if (value !== undefined) done(value)
      })
      send(id)
    })
  }

  private dropAsked(): void {
    for (const answer of [...this.asked.values()]) answer(undefined)
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
    if (isAnswer(frame) && frame.id !== undefined && this.asked.has(frame.id)) return this.asked.get(frame.id)?.(frame)
    switch (frame.type) {
      case "resumed":
        this.replaying = false
        // what follows starts at the worker's fromSeq: higher than asked (older output is gone), or lower (asked past
        // the last seq: the next live output is lastSeq + 1, and must not be held back)
        this.forwarded = frame.fromSeq - 1
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
        this.ctx.ends.add(frame)
        const limit = limitOf(frame.reason)
        const toAttached = !this.replaying && frame.seq > this.forwarded
        if (toAttached) this.forwarded = frame.seq
        this.sendEnd({ type: "ended", session: this.id, seq: frame.seq, reason: frame.reason, message: frame.message, ...(limit !== undefined ? { limit } : {}) }, toAttached)
        if (!this.replaying) this.end(frame.reason._tag)
        return
      }
      case "error":
        if (this.replaying && /^no session /.test(frame.message)) {
          // The worker no longer has it (restarted, or ended long ago): the client is told, then the route ends.
          if (this.resumeRequest !== undefined) {
            const otherwise = this.endedBefore
              ? { what: "its end was recorded, but not why, and its worker no longer keeps its output" }
              : { what: "the worker running it no longer has it: the worker restarted and the session's state is lost", reason: { _tag: "WorkerStopped" } as const }
            this.send(endedError(this.resumeRequest, this.id, this.ctx.ends.get(this.id), otherwise))
          } else {
            this.endWith({ type: "ended", session: this.id, seq: this.forwarded + 1, reason: { _tag: "WorkerStopped" }, message: "the worker running this session restarted and the session's state is lost; start a new session" })
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
    this.dropAsked()
    if (this.ended || this.workerLost !== undefined) return
    this.workerLost = this.ctx.after(this.ctx.options.workerLostGrace, () => {
      const seq = this.lastSeq + 1
      this.endWith({ type: "ended", session: this.id, seq, reason: { _tag: "WorkerStopped" }, message: `the worker running this session stopped (${why}) and did not come back within ${this.ctx.options.workerLostGrace / 1000} s` })
      this.end("WorkerStopped")
    })
  }

  /** The cluster declared our worker's host lost: the session ends now, named so (it is not waited for). */
  hostLost(host: string): void {
    if (this.ended) return
    const reason = { _tag: "WorkerLost", host } as const
    this.endWith({ type: "ended", session: this.id, seq: this.lastSeq + 1, reason, message: endSentence(reason) })
    this.end("WorkerLost")
  }

  /** Our worker is connected again: ask for everything after the last seq we saw. */
  reconnected(): void {
    if (this.workerLost === undefined || this.ended) return
    this.workerLost()
    this.workerLost = undefined
    const worker = this.ctx.links.client(this.workerId)
    if (worker === undefined) return this.lost("not connected")
    this.replaying = true
    this.resumeRequest = undefined
    worker.send({ type: "resume", session: this.id, fromSeq: this.forwarded + 1 })
  }

  /** an `ended` this backend makes itself (the worker cannot say it): sent, and remembered for later errors */
  private endWith(frame: EndedFrame): void {
    this.ctx.ends.add(frame)
    this.sendEnd(frame, true)
  }

  private endExec(id: string): void {
    this.execs.get(id)?.()
    this.execs.delete(id)
  }

  private end(reason: string): void {
    if (this.ended) return
    this.ended = true
    this.ctx.registry.ended(this.id, reason)
    this.drop()
  }

  private drop(): void {
    this.dropAsked()
    this.workerLost?.()
    this.detachTimer?.()
    for (const release of this.execs.values()) release()
    this.execs.clear()
    this.releaseSession?.()
    this.releaseSession = undefined
    if (this.ctx.router.get(this.id) === this) {
      this.ctx.router.delete(this.id, this)
      this.ctx.links.addLoad(this.workerId, -1, "session")
    }
    this.onDrop(this)
  }
}
