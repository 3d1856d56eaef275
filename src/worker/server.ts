// The worker's links to backends: a TCP (or TLS) server, one Peer per backend connection. The worker speaks first
// with a nonce; until the HMAC answer checks out nothing else is accepted. A bad, oversized or unauthenticated frame
// gets an error frame and a close; sessions of a closed connection keep running, detached, until resumed. Stopping
// ends every session (WorkerStopped, told to the backends that hold them) before the links close.
import { createHash } from "node:crypto"
import { createServer as createTcpServer, type Server, type Socket } from "node:net"
import { createServer as createTlsServer } from "node:tls"
import { readFileSync } from "node:fs"
import { Clock, Context, Duration, Effect, Fiber, Layer } from "effect"
import { ExitReason } from "../../supervisors/exit.ts"
import { describeFrameError, encodeFrame, FrameDecoder, MAX_FRAME_BYTES, MAX_PREAUTH_FRAME_BYTES } from "../protocol/frames.ts"
import { BackendFrame, FILE_CHUNK_BYTES, MAX_CODE_BYTES, MAX_OPEN_FILES, MAX_OPEN_FILES_BYTES, PROTOCOL_VERSION, type WorkerFrame } from "../protocol/worker.ts"
import { WorkerSettings, type WorkerConfig } from "./config.ts"
import { log } from "./log.ts"
import { ensureWorkerSecret, newNonce, verifyAnswer } from "../wire/secret.ts"
import { KernelSession } from "./kernel-session.ts"
import { Sessions, type SessionsShape } from "./sessions.ts"
import type { Session, Sink } from "./session.ts"

/** bytes queued for a backend past which sessions stop reading their kernels until it drains */
const CONGESTED_BYTES = 4 * 1024 * 1024
/** How long a peer has to answer the challenge. */
const AUTH_TIMEOUT = Duration.seconds(10)
/** How long a backend gets to read a last error frame or the goodbye before its connection is cut. */
const CLOSE_GRACE = Duration.seconds(1)
const BYE_GRACE = Duration.millis(500)

/** bytes of files one connection may have staged for opens not yet sent: a few opens with full workspaces at once */
const MAX_STAGED_BYTES = 4 * MAX_OPEN_FILES_BYTES

/** The files a backend sent for the home of a session it is about to open (`file` frames before its `open`). */
interface Staged {
  readonly files: Array<{ readonly path: string; readonly chunks: Array<Buffer>; more: boolean }>
  bytes: number
  /** set once a limit was passed: the open is refused with it */
  refused: string | undefined
}

/** Runs an effect from a socket callback, on the worker's runtime (its Clock); it never fails. */
type Run = (effect: Effect.Effect<void>) => void

/** Runs `f` after `delay` on the worker's Clock; the result cancels it. */
type After = (delay: Duration.Input, f: () => void) => () => void

class Peer {
  private readonly decoder = new FrameDecoder(MAX_PREAUTH_FRAME_BYTES)
  private readonly nonce = newNonce()
  private authenticated = false
  private closed = false
  private readonly staged = new Map<string, Staged>()
  private stagedBytes = 0
  readonly sink: Sink = {
    send: (frame) => this.send(frame),
    drained: () => (this.closed || this.socket.writableLength < CONGESTED_BYTES ? Promise.resolve() : new Promise((resolve) => this.socket.once("drain", resolve).once("close", resolve))),
  }

  private readonly socket: Socket
  private readonly config: WorkerConfig
  private readonly secret: Buffer
  private readonly sessions: SessionsShape
  private readonly run: Run
  private readonly after: After
  private readonly startedAt: number

  constructor(socket: Socket, config: WorkerConfig, secret: Buffer, sessions: SessionsShape, run: Run, after: After, startedAt: number) {
    this.startedAt = startedAt
    this.socket = socket
    this.config = config
    this.secret = secret
    this.sessions = sessions
    this.run = run
    this.after = after
    socket.setNoDelay(true)
    socket.on("error", (error) => log("debug", `backend connection: ${error.message}`))
    socket.on("close", () => {
      this.closed = true
      this.staged.clear()
      this.sessions.detach(this.sink)
    })
    socket.on("data", (chunk: Buffer) => this.onData(chunk))
    const cancel = after(AUTH_TIMEOUT, () => this.authenticated || this.fail(`no authentication answer within ${Duration.format(AUTH_TIMEOUT)}`))
    socket.once("close", cancel)
    this.send({ type: "challenge", nonce: this.nonce, worker: config.name ?? config.id, version: PROTOCOL_VERSION })
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
    this.after(CLOSE_GRACE, () => this.socket.destroy())
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
      this.send({ type: "authOk", worker: this.config.name ?? this.config.id, isolation: this.sessions.isolation, kernels: [...this.sessions.kinds], startedAt: this.startedAt })
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
      case "file":
        return this.stage(frame)
    }
    const session = this.sessions.get(frame.session)
    if (session === undefined) {
      return void this.send({ type: "error", session: frame.session, message: `no running session ${frame.session} on this worker` })
    }
    if (session.sink !== this.sink) session.sink = this.sink
    switch (frame.type) {
      case "execute":
        return session instanceof KernelSession ? session.execute(frame.id, frame.code, frame.language) : session.execute(frame.id, frame.code)
      case "interrupt":
        return session.interrupt()
      case "close":
        return this.run(Effect.asVoid(this.sessions.close(session.id, ExitReason.ClosedByUser())))
      case "interactChange":
        return session.interactChange(frame.interact, frame.control, frame.value)
      case "terminalInput":
        return session.terminalInput(frame.data)
      case "terminalResize":
        return session.terminalResize(frame.cols, frame.rows)
      case "listFiles":
      case "readFile":
        return this.files(session, frame)
      case "complete":
      case "inspect":
        return this.introspect(session, frame)
    }
  }

  /** A completion or an inspection in a kernel session, answered by its kernel beside the running cell. */
  private introspect(session: Session, frame: Extract<BackendFrame, { type: "complete" | "inspect" }>): void {
    const refuse = (message: string) => void this.send({ type: "error", session: frame.session, id: frame.id, message })
    const what = frame.type === "complete" ? "complete" : "inspect"
    if (!(session instanceof KernelSession)) return refuse(`session ${frame.session} is a ${session.kind} session: only a sage or python session can ${what} code`)
    const bytes = Buffer.byteLength(frame.code)
    if (bytes > MAX_CODE_BYTES) return refuse(`the code to ${what} is ${bytes} bytes of UTF-8, more than the limit of ${MAX_CODE_BYTES} bytes; send the cell alone`)
    if (frame.cursor < 0 || frame.cursor > frame.code.length) return refuse(`cursor ${frame.cursor} is outside the code, which is ${frame.code.length} UTF-16 code units long; send a cursor from 0 to its length`)
    const answer = frame.type === "complete"
      ? session.complete(frame.code, frame.cursor).pipe(Effect.map((c): WorkerFrame => ({ type: "completions", session: frame.session, id: frame.id, matches: [...c.matches], cursorStart: c.cursorStart, cursorEnd: c.cursorEnd })))
      : session.inspect(frame.code, frame.cursor, frame.detail).pipe(Effect.map((i): WorkerFrame => ({ type: "inspection", session: frame.session, id: frame.id, ...i })))
    this.run(answer.pipe(
      Effect.tap((reply) => Effect.sync(() => void this.send(reply))),
      Effect.catch((e) => Effect.sync(() => refuse(e.message))),
      Effect.asVoid,
    ))
  }

  /** Keeps a chunk of a file for the home of a session whose `open` follows; past the limits the open is refused. */
  private stage(frame: Extract<BackendFrame, { type: "file" }>): void {
    const staged = this.staged.get(frame.session) ?? { files: [], bytes: 0, refused: undefined }
    this.staged.set(frame.session, staged)
    if (staged.refused !== undefined) return
    const chunk = Buffer.from(frame.data, "base64")
    const last = staged.files.at(-1)
    const file = last !== undefined && last.more && last.path === frame.path ? last : { path: frame.path, chunks: [], more: true }
    if (file !== last) staged.files.push(file)
    file.chunks.push(chunk)
    file.more = frame.more === true
    staged.bytes += chunk.length
    this.stagedBytes += chunk.length
    if (staged.files.length > MAX_OPEN_FILES || staged.bytes > MAX_OPEN_FILES_BYTES) {
      staged.refused = `the files for session ${frame.session} are more than ${MAX_OPEN_FILES} files or ${MAX_OPEN_FILES_BYTES} bytes, the most one open takes`
    } else if (this.stagedBytes > MAX_STAGED_BYTES) {
      staged.refused = `this connection has ${this.stagedBytes} bytes of files staged for opens, more than ${MAX_STAGED_BYTES}; open fewer sessions with files at once`
    }
    if (staged.refused !== undefined) this.unstage(frame.session, staged)
  }

  /** Forgets the files staged for `session` (kept only as a refusal, when there is one). */
  private unstage(session: string, staged: Staged): void {
    this.stagedBytes -= staged.bytes
    staged.bytes = 0
    staged.files.length = 0
    if (staged.refused === undefined) this.staged.delete(session)
  }

  /** The staged files of an open that names `count` of them, complete; else why not. */
  private takeStaged(session: string, count: number | undefined): { files: Array<{ path: string; content: Buffer }> } | { refused: string } {
    const staged = this.staged.get(session)
    if (staged !== undefined) {
      const refused = staged.refused
      staged.refused = undefined
      const files = staged.files.map((f) => ({ path: f.path, content: Buffer.concat(f.chunks), more: f.more }))
      this.unstage(session, staged)
      if (refused !== undefined) return { refused }
      if (count === undefined) return { refused: `${files.length} files were sent for session ${session}, but its open names none` }
      if (files.length !== count || files.some((f) => f.more)) return { refused: `the open of session ${session} names ${count} files, but ${files.filter((f) => !f.more).length} complete ones were sent before it` }
      return { files: files.map(({ path, content }) => ({ path, content })) }
    }
    return count === undefined ? { files: [] } : { refused: `the open of session ${session} names ${count} files, but none were sent before it` }
  }

  /** A files request of a kernel session: the list of its home's files, or one file's bytes in chunks. */
  private files(session: Session, frame: Extract<BackendFrame, { type: "listFiles" | "readFile" }>): void {
    const refuse = (message: string) => void this.send({ type: "error", session: frame.session, id: frame.id, message })
    if (!(session instanceof KernelSession)) return refuse(`session ${frame.session} is a ${session.kind} session: only a kernel's home can be listed or read`)
    if (frame.type === "listFiles") {
      return this.run(session.listFiles(frame.all === true).pipe(
        Effect.tap(({ files, truncated }) => Effect.sync(() => void this.send({ type: "fileList", session: frame.session, id: frame.id, files: [...files], ...(truncated ? { truncated } : {}) }))),
        Effect.catch((e) => Effect.sync(() => refuse(e.message))),
        Effect.asVoid,
      ))
    }
    this.run(session.readFile(frame.path).pipe(
      Effect.tap((content) =>
        Effect.sync(() => {
          for (let at = 0; at === 0 || at < content.length; at += FILE_CHUNK_BYTES) {
            const end = Math.min(content.length, at + FILE_CHUNK_BYTES)
            this.send({ type: "fileData", session: frame.session, id: frame.id, data: content.subarray(at, end).toString("base64"), ...(end < content.length ? { more: true } : {}) })
            if (content.length === 0) break
          }
        })
      ),
      Effect.catch((e) => Effect.sync(() => refuse(e.message))),
      Effect.asVoid,
    ))
  }

  private open(frame: Extract<BackendFrame, { type: "open" | "run" }>): void {
    const staged = this.takeStaged(frame.session, frame.type === "open" ? frame.files : undefined)
    if ("refused" in staged) return void this.send({ type: "error", session: frame.session, message: staged.refused })
    if (staged.files.length > 0 && frame.kernel === "terminal") return void this.send({ type: "error", session: frame.session, message: "a terminal session takes no files: only a sage or python session's home is given files at its open" })
    const request = { session: frame.session, kind: frame.kernel, user: frame.user, limits: frame.limits, stateless: frame.type === "run", ...(frame.type === "open" ? { cols: frame.cols, rows: frame.rows, files: staged.files } : {}) }
    const sessions = this.sessions
    this.run(sessions.open(request, this.sink).pipe(
      Effect.tap((session) =>
        Effect.sync(() => {
          this.send({ type: "opened", session: session.id, kernel: session.kind, isolation: sessions.isolation, ...(session.pid !== undefined ? { pid: session.pid } : {}) })
          if (frame.type !== "run") return
          // Stateless: one execution in a fresh session that ends (Normal) after `done`. The line lets the fault
          // harness (src/chaos/executions.ts) count how often one code was run: a short hash, never the code.
          log("info", `run started in ${session.describe()}`, { session: session.id, kernel: session.kind, code: createHash("sha256").update(frame.code).digest("hex").slice(0, 16) })
          session.onOutput = (id, msg) => {
            if (id === "run" && msg.kind === "done") this.run(Effect.asVoid(sessions.close(session.id, ExitReason.Normal())))
          }
          if (session instanceof KernelSession) session.execute("run", frame.code, frame.language)
          else session.execute("run", frame.code)
        })
      ),
      Effect.catch((refused) => Effect.sync(() => void this.send({ type: "error", session: frame.session, message: refused.message }))),
      Effect.asVoid,
    ))
  }

  private resume(id: string, fromSeq: number): void {
    const session = this.sessions.get(id)
    if (session?.stateless === true && session.sink !== undefined && session.sink !== this.sink) {
      // another backend's request is waiting for this run: its connection is alive, so the run stays with it
      return void this.send({ type: "error", session: id, message: `run ${id} is attached to another backend's connection, which waits for it` })
    }
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

export interface BackendLinksShape {
  readonly port: number
}

/** The backend-facing server; its release ends every session first (WorkerStopped), then says goodbye. */
export class BackendLinks extends Context.Service<BackendLinks, BackendLinksShape>()("sagews/worker/BackendLinks") {
  static readonly layer = Layer.effect(BackendLinks, Effect.suspend(() => makeBackendLinks))
}

const makeBackendLinks = Effect.gen(function*() {
  const config = yield* WorkerSettings
  const sessions = yield* Sessions
  const secret = yield* Effect.promise(() => ensureWorkerSecret(config.dataDir))
  // before any session: every session a backend recorded earlier than this lived on an earlier worker
  const startedAt = yield* Clock.currentTimeMillis
  const context = yield* Effect.context<never>()
  const fork = Effect.runForkWith(context)
  const run: Run = (effect) => void fork(effect)
  const after: After = (delay, f) => {
    const fiber = fork(Effect.andThen(Effect.sleep(delay), Effect.sync(f)))
    return () => void fork(Fiber.interrupt(fiber))
  }
  const peers = new Set<Socket>()
  const onSocket = (socket: Socket): void => {
    peers.add(socket)
    socket.once("close", () => peers.delete(socket))
    new Peer(socket, config, secret, sessions, run, after, startedAt)
  }
  const server: Server = config.tls !== undefined
    ? createTlsServer({ cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) }, onSocket)
    : createTcpServer(onSocket)
  server.on("tlsClientError", (error: Error) => log("warn", `TLS handshake failed: ${error.message}`))
  const port = yield* Effect.acquireRelease(
    Effect.callback<number>((resume) => {
      server.once("error", (error) => {
        log("fatal", `worker server: cannot listen on ${config.host}:${config.port}: ${error.message}`)
        resume(Effect.die(error))
      })
      server.listen(config.port, config.host, () => {
        server.on("error", (error) => log("error", `worker server: ${error.message}`))
        const address = server.address()
        resume(Effect.succeed(typeof address === "object" && address !== null ? address.port : config.port))
      })
    }),
    () =>
      Effect.gen(function*() {
        server.close()
        yield* sessions.shutdown
        const bye = encodeFrame({ type: "error", message: "WorkerStopped: the worker is shutting down" })
        for (const socket of peers) {
          socket.end(bye)
          after(BYE_GRACE, () => socket.destroy())
        }
      }),
  )
  log("info", `worker listening on ${config.host}:${port}`, { isolation: sessions.isolation, kernels: config.kernels })
  return { port } satisfies BackendLinksShape
})
