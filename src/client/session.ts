// A stateful session as the client sees it: output in seq order, each seq once, across reconnects to any
// backend (it resumes from lastSeq + 1); executions resolve at their `done`, or when the session ends, or when
// another connection resumes it (`detached`: then it is not resumed again until `resume()` is called; its `ended`
// still comes).
import type { Language, LimitName, SessionKind } from "../protocol/browser.ts"
import type { SagewsClient } from "./connection.ts"
import type { CompletionsReply, DetachedEvent, EndedEvent, ErrorReply, FileListReply, InspectionReply, OutputEvent, OutputMsg, Reply, SavedReply } from "./types.ts"

type Listener<T> = (value: T) => void

const unexpected = (reply: Reply): ErrorReply => ({ type: "error", id: reply.id ?? "", code: "failed", message: `the server answered ${reply.type}, not the reply this request takes; try again` })

export interface ExecuteResult {
  /**
   * the execution's `done` status; `ended` when the session ended without one (closed, lost, crashed); `detached` when
   * another connection resumed the session first (the execution may still run there)
   */
  readonly status: "ok" | "error" | "interrupted" | "limit" | "ended" | "detached"
  /** status `limit`: the limit that ended the execution, and its session (whose `ended` follows) */
  readonly limit?: LimitName
  readonly outputs: ReadonlyArray<OutputMsg>
  readonly ended?: EndedEvent
  readonly detached?: DetachedEvent
}

export class ClientSession {
  readonly id: string
  readonly kernel: SessionKind
  /** the highest seq received: everything up to it has been delivered, once */
  lastSeq: number
  ended: EndedEvent | undefined
  /** set while another connection has the session (it resumed it after us) */
  detached: DetachedEvent | undefined
  /** opened with `workspace: true`: its home started with the account's files, and what it writes can be saved back */
  workspace = false
  private readonly client: SagewsClient
  private readonly outputListeners = new Set<Listener<OutputEvent>>()
  private readonly endListeners = new Set<Listener<EndedEvent>>()
  private readonly errorListeners = new Set<Listener<ErrorReply>>()
  private readonly detachListeners = new Set<Listener<DetachedEvent>>()
  /** called with the number of messages lost when output older than a resume point was no longer kept */
  onGap: (missing: number) => void = () => undefined

  constructor(client: SagewsClient, id: string, kernel: SessionKind, lastSeq = 0) {
    this.client = client
    this.id = id
    this.kernel = kernel
    this.lastSeq = lastSeq
  }

  onOutput(listener: Listener<OutputEvent>): () => void {
    this.outputListeners.add(listener)
    return () => this.outputListeners.delete(listener)
  }

  onEnded(listener: Listener<EndedEvent>): () => void {
    if (this.ended !== undefined) listener(this.ended)
    this.endListeners.add(listener)
    return () => this.endListeners.delete(listener)
  }

  /** another connection resumed the session: nothing more comes here until `resume()`, but its `ended` */
  onDetached(listener: Listener<DetachedEvent>): () => void {
    if (this.detached !== undefined) listener(this.detached)
    this.detachListeners.add(listener)
    return () => this.detachListeners.delete(listener)
  }

  /** Takes the session back after `detached` (the other connection is told in turn). */
  resume(): void {
    if (this.ended !== undefined) return
    this.detached = undefined
    this.resumeNow()
  }

  /** errors about this session that answer no request of ours (e.g. a resume that found it gone) */
  onError(listener: Listener<ErrorReply>): () => void {
    this.errorListeners.add(listener)
    return () => this.errorListeners.delete(listener)
  }

  /** @internal sent by the client on every (re)connect */
  resumeNow(): void {
    if (this.ended !== undefined || this.detached !== undefined) return
    this.client.write({ type: "resume", id: this.client.nextId("s"), session: this.id, fromSeq: this.lastSeq + 1 })
  }

  /** @internal */
  onReply(reply: Reply): void {
    // asked past the session's last seq (an attach with a made-up fromSeq): what follows starts lower
    if (reply.type === "resumed" && reply.fromSeq <= this.lastSeq) this.lastSeq = reply.fromSeq - 1
    if (reply.type === "error") {
      for (const listener of this.errorListeners) listener(reply)
      if (reply.code === "unknown_session" || reply.code === "session_ended") {
        this.deliver({ type: "ended", session: this.id, seq: this.lastSeq + 1, reason: reply.reason ?? { _tag: "Crash", detail: "gone" }, message: reply.message })
      } else if (reply.code === "no_worker") {
        setTimeout(() => this.resumeNow(), reply.retryAfterMs ?? 1_000)
      }
    }
  }

  /** @internal */
  deliver(event: OutputEvent | EndedEvent): void {
    if (event.seq <= this.lastSeq || this.ended !== undefined) return
    if (event.seq > this.lastSeq + 1) this.onGap(event.seq - this.lastSeq - 1)
    this.lastSeq = event.seq
    if (event.type === "ended") {
      this.ended = event
      this.client.sessions.delete(this.id)
      for (const listener of this.endListeners) listener(event)
    } else for (const listener of this.outputListeners) listener(event)
  }

  /** @internal another connection resumed the session: stop resuming it on reconnects, tell whoever waits */
  detachedBy(event: DetachedEvent): void {
    if (this.ended !== undefined) return
    this.detached = event
    for (const listener of this.detachListeners) listener(event)
  }

  /**
   * Runs `code` (written in `language`, when given: else the kernel's own); resolves at its `done` (or when the session
   * ends or is resumed elsewhere first). Output also goes to onOutput.
   */
  execute(code: string, onMessage?: Listener<OutputMsg>, options: { readonly language?: Language | undefined } = {}): Promise<ExecuteResult> {
    const id = this.client.nextId("x")
    const language = options.language !== undefined ? { language: options.language } : {}
    return this.track(id, () => this.client.write({ type: "execute", id, session: this.id, code, ...language }), onMessage)
  }

  /** Moves an interact control; resolves with the re-run's output. */
  interact(interact: string, control: string, value: string | number | boolean, onMessage?: Listener<OutputMsg>): Promise<ExecuteResult> {
    return this.track(`interact:${interact}`, () => this.client.write({ type: "interact", id: this.client.nextId("i"), session: this.id, interact, control, value }), onMessage)
  }

  private track(id: string, start: () => void, onMessage?: Listener<OutputMsg>): Promise<ExecuteResult> {
    // an ended or detached session answers at once: there is nobody to send the request to
    if (this.ended !== undefined) return Promise.resolve({ status: "ended", outputs: [], ended: this.ended })
    if (this.detached !== undefined) return Promise.resolve({ status: "detached", outputs: [], detached: this.detached })
    return new Promise((resolve) => {
      const outputs: Array<OutputMsg> = []
      const finish = (result: ExecuteResult): void => {
        for (const off of offs) off()
        resolve(result)
      }
      const offs = [
        this.onOutput((event) => {
          if (event.id !== id) return
          outputs.push(event.msg)
          onMessage?.(event.msg)
          if (event.msg.kind !== "done") return
          finish(event.msg.status === "limit" ? { status: "limit", limit: event.msg.limit, outputs } : { status: event.msg.status, outputs })
        }),
        this.onEnded((ended) => finish({ status: "ended", outputs, ended })),
        this.onDetached((detached) => finish({ status: "detached", outputs, detached })),
        this.onError((error) => {
          if (error.id === id) finish({ status: "error", outputs: [...outputs, { kind: "error", ename: error.code, evalue: error.message, traceback: [] }] })
        }),
      ]
      start()
    })
  }

  /** The files of the home that are new or changed since the open (`all`: every one): `fileList`, or the error. */
  async files(all = false): Promise<FileListReply | ErrorReply> {
    const reply = await this.client.request({ type: "files", id: this.client.nextId("f"), session: this.id, ...(all ? { all } : {}) })
    return reply.type === "fileList" || reply.type === "error" ? reply : unexpected(reply)
  }

  /** Saves `path` of the home into the account's workspace (at `to`, default the same path): `saved` once committed, or the error. */
  async saveFile(path: string, to?: string): Promise<SavedReply | ErrorReply> {
    const reply = await this.client.request({ type: "saveFile", id: this.client.nextId("sf"), session: this.id, path, ...(to !== undefined ? { to } : {}) })
    return reply.type === "saved" || reply.type === "error" ? reply : unexpected(reply)
  }

  /** What may replace the name before `cursor` (a string index into `code`), from the session's namespace: `completions`, or the error. */
  async complete(code: string, cursor: number): Promise<CompletionsReply | ErrorReply> {
    const reply = await this.client.request({ type: "complete", id: this.client.nextId("k"), session: this.id, code, cursor })
    return reply.type === "completions" || reply.type === "error" ? reply : unexpected(reply)
  }

  /** The help (`detail` 0, `obj?`) or source (1, `obj??`) of the object named at `cursor`: `inspection`, or the error. */
  async inspect(code: string, cursor: number, detail: 0 | 1 = 0): Promise<InspectionReply | ErrorReply> {
    const reply = await this.client.request({ type: "inspect", id: this.client.nextId("q"), session: this.id, code, cursor, detail })
    return reply.type === "inspection" || reply.type === "error" ? reply : unexpected(reply)
  }

  interrupt(): void {
    this.client.write({ type: "interrupt", id: this.client.nextId("int"), session: this.id })
  }

  close(): void {
    this.client.write({ type: "close", id: this.client.nextId("cl"), session: this.id })
  }

  terminalInput(data: string): void {
    this.client.write({ type: "terminalInput", id: this.client.nextId("t"), session: this.id, data })
  }

  terminalResize(cols: number, rows: number): void {
    this.client.write({ type: "terminalResize", id: this.client.nextId("tr"), session: this.id, cols, rows })
  }
}
