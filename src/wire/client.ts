// The backend's side of the worker protocol: connect, answer the challenge (timed on Effect's Clock; a failure is a
// WorkerConnectError with its reason), then multiplex sessions on one connection. Every frame from the worker is
// validated; a lost connection ends each session with WorkerStopped.
import { randomUUID } from "node:crypto"
import { connect as tcpConnect, type Socket } from "node:net"
import { connect as tlsConnect, type ConnectionOptions } from "node:tls"
import { Data, Duration, Effect, type Scope } from "effect"
import { encodeFrame, FrameDecoder, describeFrameError } from "../protocol/frames.ts"
import { FILE_CHUNK_BYTES, WorkerFrame, type BackendFrame, type EndedFrame, type KernelKind, type Language, type OutputMessage, type SessionKind, type SessionLimits } from "../protocol/worker.ts"
import { answerChallenge } from "./secret.ts"
import { ClientSession } from "./session.ts"

export { ClientSession }

export interface WorkerClientOptions {
  readonly port: number
  readonly host?: string
  readonly secret: Buffer
  /** TLS options when the worker is on another host (ca, servername, ...) */
  readonly tls?: ConnectionOptions
  /** ms to connect and authenticate (default CONNECT_TIMEOUT_MS) */
  readonly timeout?: number
}

/** ms a worker has to accept us and answer the handshake when the caller names no timeout */
export const CONNECT_TIMEOUT_MS = 10_000

/**
 * Why a connection to a worker was not established: nothing accepted or the connection closed before
 * authentication (Unreachable), the worker refused our answer (AuthFailed), or no answer in time (Timeout).
 */
export class WorkerConnectError extends Data.TaggedError("WorkerConnectError")<{
  /** host:port */
  readonly address: string
  readonly reason: "Unreachable" | "AuthFailed" | "Timeout"
  readonly detail: string
}> {
  override get message(): string {
    switch (this.reason) {
      case "Unreachable":
        return `worker connection closed before authentication: ${this.detail}`
      case "AuthFailed":
        return `worker refused us: ${this.detail}`
      case "Timeout":
        return `worker ${this.address} did not authenticate us within ${this.detail}`
    }
  }
}

export interface OpenOptions {
  readonly session?: string
  readonly user?: string
  readonly limits?: SessionLimits
  readonly cols?: number
  readonly rows?: number
  /** a kernel's: files put into its home before it runs anything (sent as `file` frames before the open) */
  readonly files?: ReadonlyArray<{ readonly path: string; readonly content: Uint8Array }>
}

type Listener<T> = (value: T) => void

export class WorkerClient {
  worker = ""
  isolation: "full" | "reduced" = "reduced"
  kernels: Array<KernelKind> = []
  /** when the worker process started (ms since the epoch, its clock) */
  startedAt = 0
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

  /** Connects and authenticates; rejects with a WorkerConnectError. The caller closes the client. */
  static connect(options: WorkerClientOptions): Promise<WorkerClient> {
    return Effect.runPromise(handshake(options))
  }

  /** @internal the socket, not yet authenticated */
  static open(options: WorkerClientOptions): WorkerClient {
    const host = options.host ?? "127.0.0.1"
    const socket = options.tls !== undefined ? tlsConnect({ ...options.tls, host, port: options.port }) : tcpConnect({ host, port: options.port })
    return new WorkerClient(socket)
  }

  /** @internal */
  start(): void {
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
      case "fileList":
      case "fileData":
      case "completions":
      case "inspection":
        this.sessions.get(frame.session)?.answer(frame)
        return
      case "output":
      case "ended": {
        const session = this.sessions.get(frame.session)
        session?.deliver(frame)
        if (frame.type === "ended") this.sessions.delete(frame.session)
        return
      }
      case "error":
        if (frame.session !== undefined && frame.id !== undefined) return void this.sessions.get(frame.session)?.answer(frame)
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
    const { session = randomUUID(), files = [], ...rest } = options
    this.stageFiles(session, files)
    return this.request({ type: "open", session, kernel, ...rest, ...(files.length > 0 ? { files: files.length } : {}) })
  }

  /** Sends `files` for the home of `session` as `file` frames of at most FILE_CHUNK_BYTES each; its `open` must follow. */
  stageFiles(session: string, files: ReadonlyArray<{ readonly path: string; readonly content: Uint8Array }>): void {
    for (const { path, content } of files) {
      for (let at = 0; at === 0 || at < content.byteLength; at += FILE_CHUNK_BYTES) {
        const end = Math.min(content.byteLength, at + FILE_CHUNK_BYTES)
        const data = Buffer.from(content.buffer, content.byteOffset + at, end - at).toString("base64")
        this.send({ type: "file", session, path, data, ...(end < content.byteLength ? { more: true } : {}) })
        if (content.byteLength === 0) break
      }
    }
  }

  /** Stateless execution: a fresh session that runs `code` (written in `language`, when given) once and ends after `done`. */
  async run(kernel: KernelKind, code: string, options: Omit<OpenOptions, "cols" | "rows" | "files"> & { readonly language?: Language } = {}): Promise<{ messages: Array<OutputMessage>; ended: EndedFrame }> {
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

  /** @internal drops the connection at once (a handshake that failed or was given up) */
  destroy(): void {
    this.socket.destroy()
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

/** Connect and authenticate, without a scope: the caller closes the client. Interrupting it drops the socket. */
const handshake = (options: WorkerClientOptions): Effect.Effect<WorkerClient, WorkerConnectError> => {
  const address = `${options.host ?? "127.0.0.1"}:${options.port}`
  const timeout = options.timeout ?? CONNECT_TIMEOUT_MS
  const attempt = Effect.callback<WorkerClient, WorkerConnectError>((resume) => {
    const client = WorkerClient.open(options)
    let settled = false
    const fail = (reason: WorkerConnectError["reason"], detail: string): void => {
      if (settled) return
      settled = true
      client.destroy()
      resume(Effect.fail(new WorkerConnectError({ address, reason, detail })))
    }
    const off = client.onFrame((frame) => {
      if (frame.type === "challenge") client.send({ type: "auth", hmac: answerChallenge(options.secret, frame.nonce) })
      else if (frame.type === "authOk") {
        Object.assign(client, { worker: frame.worker, isolation: frame.isolation, kernels: frame.kernels, startedAt: frame.startedAt })
        settled = true
        off()
        resume(Effect.succeed(client))
      } else if (frame.type === "error") fail("AuthFailed", frame.message)
    })
    void client.closed.then((why) => fail("Unreachable", why))
    client.start()
    return Effect.sync(() => client.destroy())
  })
  return attempt.pipe(
    Effect.timeoutOrElse({
      duration: Duration.millis(timeout),
      orElse: () => Effect.fail(new WorkerConnectError({ address, reason: "Timeout", detail: `${timeout} ms` })),
    }),
  )
}

/**
 * Connects and authenticates, timed on Effect's Clock; the connection belongs to the scope (closed with it).
 * Whoever holds the client hears its loss on `closed`.
 */
export const connectWorker = (options: WorkerClientOptions): Effect.Effect<WorkerClient, WorkerConnectError, Scope.Scope> =>
  Effect.acquireRelease(handshake(options), (client) => Effect.sync(() => client.close()))
