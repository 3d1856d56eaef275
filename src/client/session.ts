// A stateful session as the client sees it: output in seq order, each seq once, across reconnects to any
// backend (it resumes from lastSeq + 1); executions resolve at their `done`, or when the session ends.
import type { SessionKind } from "../protocol/browser.ts"
import type { SagewsClient } from "./connection.ts"
import type { EndedEvent, ErrorReply, OutputEvent, OutputMsg, Reply } from "./types.ts"

type Listener<T> = (value: T) => void

export interface ExecuteResult {
  readonly status: "ok" | "error" | "interrupted" | "ended"
  readonly outputs: ReadonlyArray<OutputMsg>
  readonly ended?: EndedEvent
}

export class ClientSession {
  readonly id: string
  readonly kernel: SessionKind
  /** the highest seq received: everything up to it has been delivered, once */
  lastSeq: number
  ended: EndedEvent | undefined
  private readonly client: SagewsClient
  private readonly outputListeners = new Set<Listener<OutputEvent>>()
  private readonly endListeners = new Set<Listener<EndedEvent>>()
  private readonly errorListeners = new Set<Listener<ErrorReply>>()
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

  /** errors about this session that answer no request of ours (e.g. a resume that found it gone) */
  onError(listener: Listener<ErrorReply>): () => void {
    this.errorListeners.add(listener)
    return () => this.errorListeners.delete(listener)
  }

  /** @internal sent by the client on every (re)connect */
  resumeNow(): void {
    if (this.ended !== undefined) return
    this.client.write({ type: "resume", id: this.client.nextId("s"), session: this.id, fromSeq: this.lastSeq + 1 })
  }

  /** @internal */
  onReply(reply: Reply): void {
    if (reply.type === "error") {
      for (const listener of this.errorListeners) listener(reply)
      if (reply.code === "unknown_session") {
        this.deliver({ type: "ended", session: this.id, seq: this.lastSeq + 1, reason: { _tag: "Crashed", detail: "gone" }, message: reply.message })
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

  /** Runs `code`; resolves at its `done` (or when the session ends first). Output also goes to onOutput. */
  execute(code: string, onMessage?: Listener<OutputMsg>): Promise<ExecuteResult> {
    const id = this.client.nextId("x")
    return this.track(id, () => this.client.write({ type: "execute", id, session: this.id, code }), onMessage)
  }

  /** Moves an interact control; resolves with the re-run's output. */
  interact(interact: string, control: string, value: string | number | boolean, onMessage?: Listener<OutputMsg>): Promise<ExecuteResult> {
    return this.track(`interact:${interact}`, () => this.client.write({ type: "interact", id: this.client.nextId("i"), session: this.id, interact, control, value }), onMessage)
  }

  private track(id: string, start: () => void, onMessage?: Listener<OutputMsg>): Promise<ExecuteResult> {
    return new Promise((resolve) => {
      const outputs: Array<OutputMsg> = []
      const finish = (result: ExecuteResult): void => {
        offOutput()
        offEnded()
        offError()
        resolve(result)
      }
      const offOutput = this.onOutput((event) => {
        if (event.id !== id) return
        outputs.push(event.msg)
        onMessage?.(event.msg)
        if (event.msg.kind === "done") finish({ status: event.msg.status, outputs })
      })
      const offEnded = this.onEnded((ended) => finish({ status: "ended", outputs, ended }))
      const offError = this.onError((error) => {
        if (error.id === id) finish({ status: "error", outputs: [...outputs, { kind: "error", ename: error.code, evalue: error.message, traceback: [] }] })
      })
      start()
    })
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
