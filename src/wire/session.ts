// One session on a worker connection, as the backend (or a test, or the bench) holds it: its output stream, its
// requests (execute, interrupt, interacts, terminal input, questions about its files and its namespace) and its end.
// WorkerClient (client.ts) delivers its frames.
import { randomUUID } from "node:crypto"
import type { EndedFrame, HomeFile, Language, OutputFrame, OutputMessage, SessionKind, WorkerFrame } from "../protocol/worker.ts"
import type { WorkerClient } from "./client.ts"

type Listener<T> = (value: T) => void

/** The worker's answer to a question about a session (its files, its namespace), or its refusal. */
export type SessionAnswer = Extract<WorkerFrame, { type: "fileList" | "fileData" | "completions" | "inspection" | "error" }>

/** One session on a worker connection: its output stream, requests, and its end. */
export class ClientSession {
  readonly id: string
  readonly kernel: SessionKind
  pid: number | undefined
  lastSeq = 0
  endedFrame: EndedFrame | undefined
  readonly ended: Promise<EndedFrame>
  private resolveEnded!: (frame: EndedFrame) => void
  private readonly listeners = new Set<Listener<OutputFrame>>()
  private readonly client: WorkerClient
  private executions = 0
  /** files requests waiting for their answer, by id */
  private readonly asked = new Map<string, (frame: SessionAnswer | undefined) => void>()

  constructor(client: WorkerClient, id: string, kernel: SessionKind) {
    this.client = client
    this.id = id
    this.kernel = kernel
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve))
  }

  onOutput(listener: Listener<OutputFrame>): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Runs `code` (written in `language`, when given); resolves with every message of that execution up to and including `done`. */
  execute(code: string, onMessage?: Listener<OutputMessage>, options: { readonly language?: Language } = {}): Promise<Array<OutputMessage>> {
    const id = `e${++this.executions}`
    const language = options.language !== undefined ? { language: options.language } : {}
    return this.collect(id, () => this.client.send({ type: "execute", session: this.id, id, code, ...language }), onMessage)
  }

  /** Moves an interact control; resolves with the re-run's messages. */
  interactChange(interact: string, control: string, value: string | number | boolean): Promise<Array<OutputMessage>> {
    return this.collect(`interact:${interact}`, () => this.client.send({ type: "interactChange", session: this.id, interact, control, value }))
  }

  private collect(id: string, start: () => void, onMessage?: Listener<OutputMessage>): Promise<Array<OutputMessage>> {
    return new Promise((resolve, reject) => {
      const messages: Array<OutputMessage> = []
      const off = this.onOutput((frame) => {
        if (frame.id !== id) return
        messages.push(frame.msg)
        onMessage?.(frame.msg)
        if (frame.msg.kind === "done") {
          off()
          resolve(messages)
        }
      })
      void this.ended.then((end) => {
        off()
        reject(Object.assign(new Error(`session ended: ${end.message}`), { ended: end, messages }))
      })
      start()
    })
  }

  interrupt(): void {
    this.client.send({ type: "interrupt", session: this.id })
  }

  close(): Promise<EndedFrame> {
    if (this.endedFrame === undefined) this.client.send({ type: "close", session: this.id })
    return this.ended
  }

  terminalInput(data: string): void {
    this.client.send({ type: "terminalInput", session: this.id, data })
  }

  terminalResize(cols: number, rows: number): void {
    this.client.send({ type: "terminalResize", session: this.id, cols, rows })
  }

  /** The regular files of the home new or changed since the open (`all`: every one); rejects with the worker's error. */
  listFiles(all = false): Promise<{ files: Array<HomeFile>; truncated: boolean }> {
    return new Promise((resolve, reject) => {
      const id = randomUUID()
      this.asked.set(id, (frame) => {
        this.asked.delete(id)
        if (frame?.type === "fileList") resolve({ files: frame.files, truncated: frame.truncated === true })
        else reject(new Error(frame?.type === "error" ? frame.message : "the session ended"))
      })
      this.client.send({ type: "listFiles", session: this.id, id, ...(all ? { all } : {}) })
    })
  }

  /** The bytes of the regular file `path` of the home; rejects with the worker's error (a symlink, too large, ...). */
  readFile(path: string): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const id = randomUUID()
      const chunks: Array<Buffer> = []
      this.asked.set(id, (frame) => {
        if (frame?.type === "fileData") {
          chunks.push(Buffer.from(frame.data, "base64"))
          if (frame.more === true) return
          this.asked.delete(id)
          return resolve(Buffer.concat(chunks))
        }
        this.asked.delete(id)
        reject(new Error(frame?.type === "error" ? frame.message : "the session ended"))
      })
      this.client.send({ type: "readFile", session: this.id, id, path })
    })
  }

  /** The names that can stand at `cursor` (UTF-16 code units into `code`); rejects with the worker's error. */
  complete(code: string, cursor: number): Promise<Extract<WorkerFrame, { type: "completions" }>> {
    return this.question((id) => this.client.send({ type: "complete", session: this.id, id, code, cursor }), "completions")
  }

  /** The help (`detail` 0) or source (1) of the object named at `cursor`; rejects with the worker's error. */
  inspect(code: string, cursor: number, detail: 0 | 1 = 0): Promise<Extract<WorkerFrame, { type: "inspection" }>> {
    return this.question((id) => this.client.send({ type: "inspect", session: this.id, id, code, cursor, detail }), "inspection")
  }

  private question<T extends "completions" | "inspection">(send: (id: string) => void, type: T): Promise<Extract<WorkerFrame, { type: T }>> {
    return new Promise((resolve, reject) => {
      const id = randomUUID()
      this.asked.set(id, (frame) => {
        this.asked.delete(id)
        if (frame !== undefined && frame.type === type) resolve(frame as Extract<WorkerFrame, { type: T }>)
        else reject(new Error(frame?.type === "error" ? frame.message : frame === undefined ? "the session ended" : `the worker answered ${frame.type}`))
      })
      send(id)
    })
  }

  /** @internal an answer to a question about the session */
  answer(frame: SessionAnswer): void {
    if (frame.id !== undefined) this.asked.get(frame.id)?.(frame)
  }

  /** @internal */
  deliver(frame: OutputFrame | EndedFrame): void {
    this.lastSeq = Math.max(this.lastSeq, frame.seq)
    if (frame.type === "ended") {
      this.endedFrame = frame
      this.resolveEnded(frame)
      for (const answer of [...this.asked.values()]) answer(undefined)
    } else for (const listener of this.listeners) listener(frame)
  }
}

