// The backend's front door as a scoped resource: one HTTP server with SockJS at /sockjs and the plain routes
// (http.ts). Built, it listens; closed (SIGTERM, SIGINT), it closes every SockJS connection, then the server.
import { createServer, type Server as HttpServer } from "node:http"
import sockjs from "sockjs"
import { Data, Duration, Effect, Layer } from "effect"
import { sourceAddress } from "./address.ts"
import { Connection } from "./connection.ts"
import { makeContext } from "./context.ts"
import { httpHandler } from "./http.ts"
import type { BackendOptions } from "./options.ts"

/** The server could not listen on its address (in use, not ours to bind, ...). */
export class ServeError extends Data.TaggedError("ServeError")<{
  readonly address: string
  readonly reason: "Listen"
  readonly detail: string
}> {
  override get message(): string {
    return `cannot serve on ${this.address}: ${this.detail}`
  }
}

/** how long stopping waits for the HTTP connections to close before it goes on regardless */
const STOP_GRACE = Duration.seconds(2)
/** ms between SockJS heartbeats: haproxy's health checks and timeouts are shorter than sockjs's 25 s default */
const SOCKJS_HEARTBEAT_MS = 10_000

const listen = (server: HttpServer, options: BackendOptions): Effect.Effect<void, ServeError> =>
  Effect.callback<void, ServeError>((resume) => {
    const failed = (e: Error): void => resume(Effect.fail(new ServeError({ address: `${options.host}:${options.port}`, reason: "Listen", detail: e.message })))
    server.once("error", failed)
    server.listen(options.port, options.host, () => {
      server.off("error", failed)
      resume(Effect.void)
    })
  })

const closeServer = (server: HttpServer): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    server.close(() => resume(Effect.void))
    server.closeAllConnections()
  })

const serve = Effect.gen(function*() {
  const ctx = yield* makeContext
  const { options } = ctx
  const connections = new Map<sockjs.Connection, Connection>()
  const sock = sockjs.createServer({
    prefix: "/sockjs",
    log: (severity, message) => {
      if (severity === "error") ctx.log.error(`sockjs: ${message}`)
    },
    heartbeat_delay: SOCKJS_HEARTBEAT_MS,
  })
  sock.on("connection", (conn) => {
    if (conn === null) return
    // sockjs hands over the peer and a few headers (X-Forwarded-For among them), never the Cookie header
    const address = sourceAddress(conn.remoteAddress, conn.headers["x-forwarded-for"])
    const handler = new Connection(ctx, { id: conn.id, address, write: (text) => conn.write(text) })
    connections.set(conn, handler)
    conn.on("data", (message: string) => {
      try {
        handler.receive(message)
      } catch (e) {
        ctx.log.error(`message handling failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`)
        handler.send({ type: "error", id: null, code: "failed", message: "the backend failed to handle this message" })
      }
    })
    conn.on("close", () => {
      handler.close()
      connections.delete(conn)
    })
  })

  const server = createServer(httpHandler(ctx, { connections: () => connections.size }))
  server.on("clientError", (_e, socket) => socket.destroy())
  server.on("connection", (socket) => socket.on("error", () => undefined))
  sock.installHandlers(server)
  yield* Effect.acquireRelease(listen(server, options), () =>
    Effect.gen(function*() {
      yield* Effect.logInfo(`stopping: closing ${connections.size} SockJS connection(s)`)
      for (const conn of connections.keys()) conn.close("1001", "backend stopping")
      yield* Effect.timeoutOption(closeServer(server), STOP_GRACE)
    }))
  // after listening, an error is one connection's or a transient one: said, not fatal
  server.on("error", (e) => ctx.log.error(`HTTP server: ${e.message}`))
  yield* Effect.logInfo(
    `listening on ${options.host}:${options.port}; workers ${options.workers.join(",") || "(none)"}; cache ${options.cache ?? "off"}; registry ${options.db !== undefined ? "postgres" : "memory"}`,
  )
})

/** The HTTP + SockJS server, open for as long as the layer is. */
export const Server = { layer: Layer.effectDiscard(serve) }
