// The worker's TCP (or TLS) server: one Peer per backend connection. The worker speaks first with a nonce;
// until the HMAC answer checks out nothing else is accepted. A bad, oversized or unauthenticated frame gets an
// error frame and a close; sessions of a closed connection keep running, detached, until resumed.
import { createServer as createTcpServer, type Server, type Socket } from "node:net"
import { createServer as createTlsServer } from "node:tls"
import { readFileSync } from "node:fs"
import { describeFrameError, encodeFrame, FrameDecoder, MAX_FRAME_BYTES, MAX_PREAUTH_FRAME_BYTES } from "../protocol/frames.ts"
import { BackendFrame, PROTOCOL_VERSION, type WorkerFrame } from "../protocol/worker.ts"
import type { WorkerConfig } from "./config.ts"
import { log } from "./log.ts"
import { newNonce, verifyAnswer } from "./secret.ts"
import type { SessionSupervisor } from "./sessions.ts"
import type { Sink } from "./session.ts"

/** bytes queued for a backend past which sessions stop reading their kernels until it drains */
const CONGESTED_BYTES = 4 * 1024 * 1024
/** ms a peer has to answer the challenge */
const AUTH_TIMEOUT = 10_000

class Peer {
  private readonly decoder = new FrameDecoder(MAX_PREAUTH_FRAME_BYTES)
  private readonly nonce = newNonce()
  private authenticated = false
  private closed = false
  readonly sink: Sink = {
    send: (frame) => this.send(frame),
    drained: () => (this.closed || this.socket.writableLength < CONGESTED_BYTES ? Promise.resolve() : new Promise((resolve) => this.socket.once("drain", resolve).once("close", resolve))),
  }

  private readonly socket: Socket
  private readonly config: WorkerConfig
  private readonly secret: Buffer
  private readonly sessions: SessionSupervisor

  constructor(socket: Socket, config: WorkerConfig, secret: Buffer, sessions: SessionSupervisor) {
    this.socket = socket
    this.config = config
    this.secret = secret
    this.sessions = sessions
    socket.setNoDelay(true)
    socket.on("error", (error) => log("debug", `backend connection: ${error.message}`))
    socket.on("close", () => {
      this.closed = true
      this.sessions.detach(this.sink)
    })
    socket.on("data", (chunk: Buffer) => this.onData(chunk))
    const timer = setTimeout(() => this.authenticated || this.fail("no authentication answer within 10 s"), AUTH_TIMEOUT)
    timer.unref()
    socket.once("close", () => clearTimeout(timer))
    this.send({ type: "challenge", nonce: this.nonce, worker: config.id, version: PROTOCOL_VERSION })
  }

  /** false when the connection is congested */
  send(frame: WorkerFrame): boolean {
    if (!this.closed && this.socket.writable) this.socket.write(encodeFrame(frame))
    return this.closed || this.socket.writableLength < CONGESTED_BYTES
  }

  private fail(message: string): void {
    if (this.closed) return
    log("warn", `closing a backend connection: ${message}`, { remote: this.socket.remoteAddress })
    this.send({ type: "error", message })
    this.closed = true
    this.socket.end()
    setTimeout(() => this.socket.destroy(), 1_000).unref()
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return
    const result = this.decoder.push(chunk)
    for (const frame of result.frames) {
      if (this.closed) return
      this.onFrame(frame)
    }
    if (result._tag === "Failed") this.fail(describeFrameError(result.error))
  }

  private onFrame(raw: unknown): void {
    const parsed = BackendFrame.safeParse(raw)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      return this.fail(`invalid frame: ${issue?.path.join(".") || "(frame)"}: ${issue?.message ?? "invalid"}`)
    }
    const frame = parsed.data
    if (!this.authenticated) {
      if (frame.type !== "auth") return this.fail(`the first frame must be "auth", got "${frame.type}"`)
      if (!verifyAnswer(this.secret, this.nonce, frame.hmac)) return this.fail("authentication failed: wrong answer to the challenge")
      this.authenticated = true
      this.decoder.limit = MAX_FRAME_BYTES
      this.send({ type: "authOk", worker: this.config.id, isolation: this.sessions.isolation, kernels: [...this.sessions.pools.keys()] })
      return
    }
    this.dispatch(frame)
  }

  private dispatch(frame: BackendFrame): void {
    switch (frame.type) {
      case "auth":
        return void this.send({ type: "error", message: "already authenticated" })
      case "ping":
        return void this.send({ type: "pong", id: frame.id })
      case "open":
      case "run":
        return void this.open(frame)
      case "resume":
        return this.resume(frame.session, frame.fromSeq)
    }
    const session = this.sessions.get(frame.session)
    if (session === undefined) {
      return void this.send({ type: "error", session: frame.session, message: `no running session ${frame.session} on this worker` })
    }
    if (session.sink !== this.sink) session.sink = this.sink
    switch (frame.type) {
      case "execute":
        return session.execute(frame.id, frame.code)
      case "interrupt":
        return session.interrupt()
      case "close":
        return void session.end({ _tag: "ClosedByUser" })
      case "interactChange":
        return session.interactChange(frame.interact, frame.control, frame.value)
      case "terminalInput":
        return session.terminalInput(frame.data)
      case "terminalResize":
        return session.terminalResize(frame.cols, frame.rows)
    }
  }

  private async open(frame: Extract<BackendFrame, { type: "open" | "run" }>): Promise<void> {
    try {
      const session = await this.sessions.open(
        { session: frame.session, kind: frame.kernel, user: frame.user, limits: frame.limits, ...(frame.type === "open" ? { cols: frame.cols, rows: frame.rows } : {}) },
        this.sink,
      )
      this.send({ type: "opened", session: session.id, kernel: session.kind, isolation: this.sessions.isolation, ...(session.pid !== undefined ? { pid: session.pid } : {}) })
      if (frame.type === "run") {
        // Stateless: one execution in a fresh session that ends after `done`.
        session.onOutput = (id, msg) => {
          if (id === "run" && msg.kind === "done") void session.end({ _tag: "Completed" })
        }
        session.execute("run", frame.code)
      }
    } catch (error) {
      this.send({ type: "error", session: frame.session, message: error instanceof Error ? error.message : String(error) })
    }
  }

  private resume(id: string, fromSeq: number): void {
    const session = this.sessions.get(id)
    const outputLog = session?.log ?? this.sessions.endedLog(id)
    if (outputLog === undefined) return void this.send({ type: "error", session: id, message: `no session ${id} on this worker (it may have ended more than a minute ago)` })
    const first = Math.max(fromSeq, 1)
    if (first < outputLog.firstKept) {
      this.send({ type: "error", session: id, message: `output before seq ${outputLog.firstKept} is no longer kept; resuming from there` })
    }
    const frames = outputLog.since(first)
    this.send({ type: "resumed", session: id, fromSeq: frames[0]?.seq ?? outputLog.lastSeq + 1, lastSeq: outputLog.lastSeq })
    for (const frame of frames) this.send(frame)
    if (session !== undefined) session.sink = this.sink
  }
}

export const startServer = async (config: WorkerConfig, secret: Buffer, sessions: SessionSupervisor): Promise<{ server: Server; port: number; peers: Set<Socket> }> => {
  const peers = new Set<Socket>()
  const onSocket = (socket: Socket): void => {
    peers.add(socket)
    socket.once("close", () => peers.delete(socket))
    new Peer(socket, config, secret, sessions)
  }
  const server =
    config.tls !== undefined
      ? createTlsServer({ cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) }, onSocket)
      : createTcpServer(onSocket)
  server.on("error", (error) => log("error", `worker server: ${error.message}`))
  server.on("tlsClientError", (error: Error) => log("warn", `TLS handshake failed: ${error.message}`))
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(config.port, config.host, () => resolve())
  })
  const address = server.address()
  return { server, port: typeof address === "object" && address !== null ? address.port : config.port, peers }
}
