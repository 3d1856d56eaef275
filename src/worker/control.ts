// The worker's control socket: the operator's `sagews sessions` and `sagews kill` (src/protocol/operator.ts).
// A unix socket, mode 0600, one JSON request a line; a malformed request gets an error reply, never a crash.
import { chmodSync, mkdirSync, rmSync } from "node:fs"
import { createConnection, createServer, type Server, type Socket } from "node:net"
import { dirname } from "node:path"
import { Data, Effect, FiberSet, type Scope } from "effect"
import { MAX_REQUEST_BYTES, noLiveSession, parseOperatorRequest, type KillReply, type OperatorRequest, type SessionsReport } from "../protocol/operator.ts"

/** What the control socket shows and does: the worker's sessions, and ending one with reason ClosedByOperator. */
export interface SessionsView {
  readonly report: Effect.Effect<SessionsReport>
  readonly kill: (session: string) => Effect.Effect<"killed" | "unknown">
}

export class WorkerControlError extends Data.TaggedError("WorkerControlError")<{
  /** InUse: another live worker answers on the path; Listen: the socket could not be made */
  readonly reason: "InUse" | "Listen"
  readonly path: string
  readonly detail: string
}> {
  override get message(): string {
    return `worker control socket ${this.path}: ${this.detail}`
  }
}

/** How long a leftover socket file gets to answer before it is taken for a dead worker's and removed. */
const STALE_PROBE_MS = 500

/** A connection that sends nothing for this long is closed: the CLI asks and goes within milliseconds. */
const IDLE_CONNECTION_MS = 60_000

/** Owner only: whoever may read and write the socket may end any user's session. */
const SOCKET_MODE = 0o600

const answers = (path: string): Promise<boolean> =>
  new Promise((resolve) => {
    const probe = createConnection(path)
    const done = (alive: boolean) => {
      clearTimeout(timer)
      probe.destroy()
      resolve(alive)
    }
    const timer = setTimeout(() => done(false), STALE_PROBE_MS)
    probe.on("connect", () => done(true))
    probe.on("error", () => done(false))
  })

const handle = (view: SessionsView, request: OperatorRequest): Effect.Effect<SessionsReport | KillReply> => {
  switch (request.op) {
    case "sessions":
      return view.report
    case "kill":
      return Effect.flatMap(
        view.kill(request.session),
        (r): Effect.Effect<KillReply> =>
          r === "killed" ? Effect.succeed({ ok: true }) : Effect.map(view.report, (rep) => ({ error: noLiveSession(request.session, rep.worker) })),
      )
  }
}

/**
 * Serves `view` on `path` until the scope closes: listening when this completes; at scope close the server, its
 * connections and requests in flight end and the socket file is removed. A leftover file that nothing answers on
 * (a SIGKILLed worker's) is replaced; one a live worker answers on is an `InUse` error.
 */
export const serveWorkerControl = (path: string, view: SessionsView): Effect.Effect<void, WorkerControlError, Scope.Scope> =>
  Effect.gen(function* () {
    const run = yield* FiberSet.makeRuntimePromise<never, unknown, never>()
    const connections = new Set<Socket>()

    const serve = (socket: Socket) => {
      connections.add(socket)
      socket.on("close", () => connections.delete(socket))
      socket.on("error", () => socket.destroy()) // a client gone mid-request: nothing to answer
      socket.setEncoding("utf8")
      socket.setTimeout(IDLE_CONNECTION_MS, () => socket.destroy())
      let buf = ""
      let ended = false
      // requests on one connection are answered in order, one reply line each
      let queue: Promise<void> = Promise.resolve()
      const send = (reply: unknown) => {
        if (!socket.destroyed && socket.writable) socket.write(JSON.stringify(reply) + "\n")
      }
      const answer = (line: string) => {
        const parsed = parseOperatorRequest(line)
        queue = queue.then(() =>
          parsed.ok
            ? run(handle(view, parsed.request)).then(send, (e: unknown) => send({ error: `the worker failed to answer ${parsed.request.op}: ${e instanceof Error ? e.message : String(e)}` }))
            : send({ error: parsed.error }),
        )
      }
      socket.on("data", (chunk: string) => {
        if (ended) return
        buf += chunk
        for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
          const line = buf.slice(0, nl).trim()
          buf = buf.slice(nl + 1)
          if (line !== "") answer(line)
        }
        if (Buffer.byteLength(buf) > MAX_REQUEST_BYTES) {
          // a line this long cannot be resynchronised: answer once and close
          ended = true
          buf = ""
          queue = queue.then(() => {
            send({ error: `request line longer than ${MAX_REQUEST_BYTES} bytes; one request is one line of JSON` })
            socket.end(() => socket.destroy())
          })
        }
      })
      // the client half-closes after its last request: reply to everything, then close our side
      socket.on("end", () => {
        if (!ended && buf.trim() !== "") answer(buf.trim())
        ended = true
        queue = queue.then(() => void socket.end())
      })
    }

    const listen = Effect.tryPromise({
      try: async (): Promise<Server> => {
        mkdirSync(dirname(path), { recursive: true })
        if (await answers(path)) throw new WorkerControlError({ reason: "InUse", path, detail: "another worker answers on it; is a worker with this id already running?" })
        rmSync(path, { force: true })
        const server = createServer({ allowHalfOpen: true }, serve)
        await new Promise<void>((resolve, reject) => {
          server.once("error", reject)
          // the bind happens inside listen(): under this umask the socket is never open to others, not even briefly
          const umask = process.umask(0o177)
          try {
            server.listen(path, () => {
              server.off("error", reject)
              resolve()
            })
          } finally {
            process.umask(umask)
          }
        })
        chmodSync(path, SOCKET_MODE)
        // after listening, an error is one failed accept (EMFILE): the server goes on, the log says so
        server.on("error", (e) => void run(Effect.logWarning(`worker control socket ${path}: ${e.message}`)))
        return server
      },
      catch: (e) => (e instanceof WorkerControlError ? e : new WorkerControlError({ reason: "Listen", path, detail: e instanceof Error ? e.message : String(e) })),
    })

    yield* Effect.acquireRelease(listen, (server) =>
      Effect.promise(
        () =>
          new Promise<void>((resolve) => {
            server.close(() => resolve())
            for (const socket of connections) socket.destroy()
          }),
      ).pipe(Effect.ensuring(Effect.sync(() => rmSync(path, { force: true })))),
    )
  })
