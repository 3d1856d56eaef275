// One live session's state, as the backend connection sees it: sequence-numbered output (kept for resume), the
// sink it is attached to, its activity for the limits, and the requests a kind of session answers. Its life — start,
// limits, the kill and the `ended` frame — is a supervised child (session-child.ts), not this object; that child
// tells it when a limit is reached, and from then on it says only its last `done` and its `ended`.
import type { ExitReason } from "../../supervisors/exit.ts"
import { MAX_FRAME_BYTES } from "../protocol/frames.ts"
import { endSentence, toWire } from "../protocol/reason.ts"
import type { LimitName, OutputMessage, SessionKind, WorkerFrame } from "../protocol/worker.ts"
import type { SessionCgroup } from "./cgroups.ts"
import type { ResolvedLimits } from "./config.ts"
import type { Activity } from "./limits.ts"
import { OutputLog } from "./outlog.ts"

/** Where a session's frames go: the backend connection it is attached to. */
export interface Sink {
  /** false when the connection is congested: stop reading the kernel until `drained` */
  send(frame: WorkerFrame): boolean
  drained(): Promise<void>
}

export interface SessionInit {
  readonly id: string
  readonly kind: SessionKind
  readonly user: string | undefined
  readonly uid: number | undefined
  readonly home: string
  readonly limits: ResolvedLimits
  readonly keepMessages: number
  readonly keepBytes: number
  readonly activity: Activity
}

/** Room left in a frame for the envelope around an output message. */
const MAX_MESSAGE_BYTES = MAX_FRAME_BYTES - 4096

/** An output message too large for one frame is replaced by an error that says so. */
const fitsInFrame = (msg: OutputMessage): OutputMessage => {
  const bytes = Buffer.byteLength(JSON.stringify(msg))
  if (bytes <= MAX_MESSAGE_BYTES) return msg
  const what = msg.kind === "display" ? `a display of ${Object.keys(msg.data).join(", ")}` : `a ${msg.kind} message`
  return { kind: "error", ename: "OutputTooLarge", evalue: `${what} of ${bytes} bytes is larger than the limit of ${MAX_MESSAGE_BYTES} bytes; it was not sent`, traceback: [] }
}

export abstract class Session {
  readonly log: OutputLog
  sink: Sink | undefined
  /** root: the session's own cgroup (its container's processes, limits, OOM count, CPU seconds) */
  cgroup: SessionCgroup | undefined
  /** a stateless `run`'s session: one backend's request waits for it, so a resume does not take it from a live link */
  stateless = false
  /** called after each output message (the stateless `run` ends its session on `done`) */
  onOutput: ((id: string | undefined, msg: OutputMessage) => void) | undefined
  readonly startedAt: number
  /** set once the session has ended: nothing more is sent to the kernel */
  ended = false
  /** set once a limit ended the session: nothing it prints is recorded or sent any more, only its `ended` */
  private cut = false
  private finished = false

  protected readonly init: SessionInit

  constructor(init: SessionInit) {
    this.init = init
    this.log = new OutputLog(init.keepMessages, init.keepBytes)
    this.startedAt = init.activity.now()
  }

  get id(): string {
    return this.init.id
  }
  get kind(): SessionKind {
    return this.init.kind
  }
  get user(): string | undefined {
    return this.init.user
  }
  get uid(): number | undefined {
    return this.init.uid
  }
  get home(): string {
    return this.init.home
  }
  get limits(): ResolvedLimits {
    return this.init.limits
  }
  get activity(): Activity {
    return this.init.activity
  }

  abstract get pid(): number | undefined
  abstract execute(id: string, code: string): void
  abstract interrupt(): void
  interactChange(_interact: string, _control: string, _value: string | number | boolean): void {
    this.output(undefined, { kind: "error", ename: "NotSupported", evalue: `a ${this.kind} session has no interacts`, traceback: [] })
  }
  terminalInput(_data: string): void {}
  terminalResize(_cols: number, _rows: number): void {}

  /** Records and forwards one output message; false when the backend connection is congested. */
  output(id: string | undefined, message: OutputMessage): boolean {
    if (this.cut) return true
    this.activity.touch()
    const msg = fitsInFrame(message)
    const flowing = this.record(id, msg)
    this.onOutput?.(id, msg)
    return flowing
  }

  /**
   * A limit ended the session (the child decided it; the kill follows). The execution running ends with one `done`
   * that names the limit, those queued behind it are dropped, and from now on nothing the session prints — the
   * kernel's own `done`, what its kill makes it print — is recorded or sent: its next frame is `ended`.
   */
  limitReached(limit: LimitName): void {
    if (this.cut) return
    this.ended = true
    const running = this.abandon()
    if (running !== undefined) this.record(running, { kind: "done", status: "limit", limit })
    this.cut = true
  }

  /** Drops the work the session was given; the id of the execution it was running, if one was. */
  protected abandon(): string | undefined {
    return undefined
  }

  private record(id: string | undefined, msg: OutputMessage): boolean {
    const frame = { type: "output" as const, session: this.id, seq: this.log.nextSeq(), ...(id !== undefined ? { id } : {}), msg }
    this.log.add(frame)
    return this.sink?.send(frame) ?? true
  }

  /**
   * The last frame of the session: its reason, in words for a person. Sent once everything of it is gone, or, when
   * its worker stops, at once (its clients hear it while the worker still can tell them). Only the first call counts.
   */
  finish(reason: ExitReason): void {
    if (this.finished) return
    this.finished = true
    this.ended = true
    this.cut = true
    const wire = toWire(reason)
    const frame = { type: "ended" as const, session: this.id, seq: this.log.nextSeq(), reason: wire, message: endSentence(wire, this.limits) }
    this.log.add(frame)
    this.sink?.send(frame)
  }

  describe(): string {
    return `${this.kind} session ${this.id}${this.uid !== undefined ? ` uid ${this.uid}` : ""}`
  }
}
