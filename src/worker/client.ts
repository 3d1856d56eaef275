// The backend's side of the worker protocol: connect, answer the challenge, then multiplex sessions on one
// connection. Every frame from the worker is validated; a lost connection ends each session with WorkerStopped.
import { randomUUID } from "node:crypto"
import { connect as tcpConnect, type Socket } from "node:net"
import { connect as tlsConnect, type ConnectionOptions } from "node:tls"
import { encodeFrame, FrameDecoder, describeFrameError } from "../protocol/frames.ts"
import { WorkerFrame, type BackendFrame, type EndedFrame, type KernelKind, type OutputFrame, type OutputMessage, type SessionKind, type SessionLimits } from "../protocol/worker.ts"
import { answerChallenge } from "./secret.ts"

export interface WorkerClientOptions {
  readonly port: number
  readonly host?: string
  readonly secret: Buffer
  /** TLS options when the worker is on another host (ca, servername, ...) */
  readonly tls?: ConnectionOptions
  /** ms to connect and authenticate */
  readonly timeout?: number
}

export interface OpenOptions {
  readonly session?: string
  readonly user?: string
  readonly limits?: SessionLimits
  readonly cols?: number
  readonly rows?: number
}

type Listener<T> = (value: T) => void

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

  /** Runs `code`; resolves with every message of that execution up to and including `done`. */
  execute(code: string, onMessage?: Listener<OutputMessage>): Promise<Array<OutputMessage>> {
    const id = `e${++this.executions}`
    return this.collect(id, () => this.client.send({ type: "execute", session: this.id, id, code }), onMessage)
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

  /** @internal */
  deliver(frame: OutputFrame | EndedFrame): void {
    this.lastSeq = Math.max(this.lastSeq, frame.seq)
    if (frame.type === "ended") {
      this.endedFrame = frame
      this.resolveEnded(frame)
    } else for (const listener of this.listeners) listener(frame)
  }
}

export class WorkerClient {
  worker = ""
  isolation: "full" | "reduced" = "reduced"
  kernels: Array<KernelKind> = []
  readonly sessions = new Map<string, ClientSession>()
  readonly closed: Promise<string>
  private resolveClosed!: (why: string) => void
  private readonly socket: Socket
  private readonly decoder = new FrameDecoder()
  private readonly pending = new Map<string, { resolve: (s: ClientSession) => void; reject: (e: Error) => void }>()
  private readonly frameListeners = new Set<Listener<WorkerFrame>>()

  private constructor(socket: Socket) {
    this.socket = socket
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve))
  }

  /** Connects and authenticates; rejects with the worker's error message or a timeout. */
  static connect(options: WorkerClientOptions): Promise<WorkerClient> {
    const host = options.host ?? "127.0.0.1"
    const socket = options.tls !== undefined ? tlsConnect({ ...options.tls, host, port: options.port }) : tcpConnect({ host, port: options.port })
    const client = new WorkerClient(socket)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`worker ${host}:${options.port} did not authenticate us within ${options.timeout ?? 10_000} ms`))
        socket.destroy()
      }, options.timeout ?? 10_000)
      const off = client.onFrame((frame) => {
        if (frame.type === "challenge") client.send({ type: "auth", hmac: answerChallenge(options.secret, frame.nonce) })
        else if (frame.type === "authOk") {
          Object.assign(client, { worker: frame.worker, isolation: frame.isolation, kernels: frame.kernels })
          clearTimeout(timer)
          off()
          resolve(client)
        } else if (frame.type === "error") reject(new Error(`worker refused us: ${frame.message}`))
      })
      void client.closed.then((why) => {
        clearTimeout(timer)
        reject(new Error(`worker connection closed before authentication: ${why}`))
      })
      client.start()
    })
  }

  private start(): void {
    this.socket.setNoDelay?.(true)
    this.socket.on("error", (error) => this.shutdown(error.message))
    this.socket.on("close", () => this.shutdown("connection closed"))
    this.socket.on("data", (chunk: Buffer) => {
      const result = this.decoder.push(chunk)
      for (const raw of result.frames) {
        const frame = WorkerFrame.safeParse(raw)
        if (frame.success) this.dispatch(frame.data)
      }
      if (result._tag === "Failed") {
        this.shutdown(describeFrameError(result.error))
        this.socket.destroy()
      }
    })
  }

  onFrame(listener: Listener<WorkerFrame>): () => void {
    this.frameListeners.add(listener)
    return () => this.frameListeners.delete(listener)
  }

  send(frame: BackendFrame): void {
    if (this.socket.writable) this.socket.write(encodeFrame(frame))
  }

  private dispatch(frame: WorkerFrame): void {
    for (const listener of this.frameListeners) listener(frame)
    switch (frame.type) {
      case "opened": {
        const session = new ClientSession(this, frame.session, frame.kernel)
        session.pid = frame.pid
        this.sessions.set(frame.session, session)
        this.pending.get(frame.session)?.resolve(session)
        this.pending.delete(frame.session)
        return
      }
      case "output":
      case "ended": {
        const session = this.sessions.get(frame.session)
        session?.deliver(frame)
        if (frame.type === "ended") this.sessions.delete(frame.session)
        return
      }
      case "error":
        if (frame.session !== undefined) {
          this.pending.get(frame.session)?.reject(new Error(frame.message))
          this.pending.delete(frame.session)
        }
        return
    }
  }

  private request(frame: Extract<BackendFrame, { type: "open" | "run" }>): Promise<ClientSession> {
    return new Promise((resolve, reject) => {
      this.pending.set(frame.session, { resolve, reject })
      this.send(frame)
    })
  }

  open(kernel: SessionKind, options: OpenOptions = {}): Promise<ClientSession> {
    const { session = randomUUID(), ...rest } = options
    return this.request({ type: "open", session, kernel, ...rest })
  }

  /** Stateless execution: a fresh session that runs `code` once and ends after `done`. */
  async run(kernel: KernelKind, code: string, options: Omit<OpenOptions, "cols" | "rows"> = {}): Promise<{ messages: Array<OutputMessage>; ended: EndedFrame }> {
    const { session: id = randomUUID(), ...rest } = options
    const messages: Array<OutputMessage> = []
    const off = this.onFrame((frame) => frame.type === "output" && frame.session === id && messages.push(frame.msg))
    const session = await this.request({ type: "run", session: id, kernel, code, ...rest })
    const ended = await session.ended
    off()
    return { messages, ended }
  }

  /** Re-attaches a session (e.g. after a reconnect) and replays its output from `fromSeq`. */
  resume(id: string, kernel: SessionKind, fromSeq: number): ClientSession {
    const session = this.sessions.get(id) ?? new ClientSession(this, id, kernel)
    this.sessions.set(id, session)
    this.send({ type: "resume", session: id, fromSeq })
    return session
  }

  /** The round trip in ms; rejects when the connection closes first. */
  ping(): Promise<number> {
    const id = randomUUID()
    const started = performance.now()
    return new Promise((resolve, reject) => {
      const off = this.onFrame((frame) => {
        if (frame.type === "pong" && frame.id === id) {
          off()
          resolve(performance.now() - started)
        }
      })
      void this.closed.then((why) => {
        off()
        reject(new Error(`worker connection closed before the pong: ${why}`))
      })
      this.send({ type: "ping", id })
    })
  }

  close(): void {
    this.socket.end()
  }

  private shutdown(why: string): void {
    for (const [id, waiter] of this.pending) waiter.reject(new Error(`worker connection lost: ${why}`)), this.pending.delete(id)
    for (const session of this.sessions.values()) {
      session.deliver({
        type: "ended",
        session: session.id,
        seq: session.lastSeq + 1,
        reason: { _tag: "WorkerStopped" },
        message: `the connection to the worker was lost (${why}); if the worker is back, resume from seq ${session.lastSeq + 1}`,
      })
    }
    this.sessions.clear()
    this.resolveClosed(why)
  }
}
