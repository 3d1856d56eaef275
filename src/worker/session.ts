// One session, a temporary child of the session supervisor: limits (wall, idle, exec), sequence-numbered
// output, and the end protocol (escalating kill, then exactly one `ended` frame with the reason).
import type { EndReason, OutputMessage, SessionKind, WorkerFrame } from "../protocol/worker.ts"
import { formatEndReason } from "../protocol/worker.ts"
import { MAX_FRAME_BYTES } from "../protocol/frames.ts"
import type { ResolvedLimits } from "./config.ts"
import type { SessionCgroup } from "./cgroups.ts"
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
  readonly killGrace: number
  readonly keepMessages: number
  readonly keepBytes: number
  /** the supervisor's cleanup (wait for its cgroup to empty, remove the home, free the uid); once, before `ended` */
  readonly cleanup: (session: Session) => Promise<void>
}

const wait = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Room left in a frame for the envelope around an output message. */
const MAX_MESSAGE_BYTES = MAX_FRAME_BYTES - 4096

/** An output message too large for one frame is replaced by an error that says so. */
const fitsInFrame = (msg: OutputMessage): OutputMessage => {
  const bytes = Buffer.byteLength(JSON.stringify(msg))
  if (bytes <= MAX_MESSAGE_BYTES) return msg
  const what = msg.kind === "display" ? `a display of ${Object.keys(msg.data).join(", ")}` : `a ${msg.kind} message`
  return { kind: "error", ename: "OutputTooLarge", evalue: `${what} of ${bytes} bytes is larger than the limit of ${MAX_MESSAGE_BYTES} bytes; it was not sent`, traceback: [] }
}

export const endMessage = (reason: EndReason, limits: ResolvedLimits): string => {
  switch (reason._tag) {
    case "Timeout":
      return `the session reached its ${reason.limit} time limit (${limits[reason.limit]} s) and was ended; start a new session to continue`
    case "CpuLimit":
      return `the session used its ${limits.cpu} CPU seconds and was ended`
    case "OutOfMemory":
      return `the session exceeded its memory limit (${limits.memory} MiB) and was ended`
    case "Killed":
      return `the session's kernel was killed by ${reason.signal}`
    case "Crashed":
      return `the session's kernel crashed: ${reason.detail}`
    case "ClosedByUser":
      return "the session was closed"
    case "Completed":
      return "the stateless execution finished"
    case "WorkerStopped":
      return "the worker running this session stopped; start a new session"
  }
}

export abstract class Session {
  readonly log: OutputLog
  sink: Sink | undefined
  /** root: the session's own cgroup (its container's processes, limits, OOM count); set before it starts */
  cgroup: SessionCgroup | undefined
  /** called after each output message (the stateless `run` ends its session on `done`) */
  onOutput: ((id: string | undefined, msg: OutputMessage) => void) | undefined
  readonly startedAt = Date.now()
  lastActivity = Date.now()
  /** epoch ms the running execution started, undefined when the kernel is not computing */
  busySince: number | undefined
  endReason: EndReason | undefined
  private finished = false
  private exitedResolve: (() => void) | undefined
  protected readonly exited: Promise<void>
  readonly ended: Promise<EndReason>
  private endedResolve!: (reason: EndReason) => void

  protected readonly init: SessionInit

  constructor(init: SessionInit) {
    this.init = init
    this.log = new OutputLog(init.keepMessages, init.keepBytes)
    this.exited = new Promise((resolve) => (this.exitedResolve = resolve))
    this.ended = new Promise((resolve) => (this.endedResolve = resolve))
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

  abstract get pid(): number | undefined
  abstract execute(id: string, code: string): void
  abstract interrupt(): void
  interactChange(_interact: string, _control: string, _value: string | number | boolean): void {
    this.output(undefined, { kind: "error", ename: "NotSupported", evalue: `a ${this.kind} session has no interacts`, traceback: [] })
  }
  terminalInput(_data: string): void {}
  terminalResize(_cols: number, _rows: number): void {}
  /** graceful first step of stopping (ask the kernel to exit); the escalation follows */
  protected abstract askToExit(): void

  /** Records and forwards one output message; false when the backend connection is congested. */
  output(id: string | undefined, message: OutputMessage): boolean {
    this.lastActivity = Date.now()
    const msg = fitsInFrame(message)
    const frame = { type: "output" as const, session: this.id, seq: this.log.nextSeq(), ...(id !== undefined ? { id } : {}), msg }
    this.log.add(frame)
    const flowing = this.sink?.send(frame) ?? true
    this.onOutput?.(id, msg)
    return flowing
  }

  /** The limit this session has passed at `now`, if any. */
  overLimit(now: number): EndReason | undefined {
    if (now - this.startedAt > this.limits.wall * 1000) return { _tag: "Timeout", limit: "wall" }
    if (this.busySince !== undefined && now - this.busySince > this.limits.exec * 1000) return { _tag: "Timeout", limit: "exec" }
    if (this.busySince === undefined && now - this.lastActivity > this.limits.idle * 1000) return { _tag: "Timeout", limit: "idle" }
    return undefined
  }

  /**
   * Ends the session (the first reason wins): a polite request, then interrupt, SIGQUIT and SIGKILL to the
   * process group, `killGrace` ms apart, each only if the kernel is still there.
   */
  async end(reason: EndReason): Promise<EndReason> {
    if (this.endReason !== undefined || this.finished) return this.ended
    this.endReason = reason
    const polite = reason._tag === "ClosedByUser" || reason._tag === "Completed" || reason._tag === "WorkerStopped"
    // A computing kernel cannot read a polite request: closing it goes straight to SIGKILL.
    const steps: Array<NodeJS.Signals | "exit"> = polite ? (this.busySince === undefined ? ["exit", "SIGKILL"] : ["SIGKILL"]) : ["SIGINT", "SIGQUIT", "SIGKILL"]
    for (const step of steps) {
      if (this.finished) break
      if (step === "exit") this.askToExit()
      else if (step === "SIGKILL") this.killAll()
      else this.signalGroup(step)
      await Promise.race([this.exited, wait(this.init.killGrace)])
    }
    return this.ended
  }

  /** whether the kernel's OOM killer has struck in this session */
  outOfMemory(): boolean {
    return (this.cgroup?.oomKills() ?? 0) > 0
  }

  /** SIGKILLs every process of the session wherever it forked to: its cgroup (its container), else its group. */
  killAll(): void {
    if (this.cgroup !== undefined) this.cgroup.kill()
    else this.signalGroup("SIGKILL")
  }

  protected signalGroup(signal: NodeJS.Signals): void {
    const pid = this.pid
    if (pid === undefined) return
    try {
      // SIGINT goes to the kernel alone (like an interrupt); the others to its whole process group.
      process.kill(signal === "SIGINT" ? pid : -pid, signal)
    } catch {
      // already gone
    }
  }

  /** The kernel process is gone; `natural` is why, unless the worker had already decided to end it. */
  async processExited(natural: EndReason): Promise<void> {
    if (this.finished) return
    this.finished = true
    this.busySince = undefined
    this.exitedResolve?.()
    // The OOM killer's SIGKILL looks like any other: the cgroup tells it apart.
    const reason = this.endReason ?? (this.outOfMemory() ? { _tag: "OutOfMemory" as const } : natural)
    this.endReason = reason
    await this.init.cleanup(this)
    const frame = { type: "ended" as const, session: this.id, seq: this.log.nextSeq(), reason, message: endMessage(reason, this.limits) }
    this.log.add(frame)
    this.sink?.send(frame)
    this.endedResolve(reason)
  }

  describe(): string {
    return `${this.kind} session ${this.id}${this.uid !== undefined ? ` uid ${this.uid}` : ""}${this.endReason ? ` ${formatEndReason(this.endReason)}` : ""}`
  }
}
