// The backend program: `node src/backend/main.ts --data DIR --port N --id backend:K --workers H:P,... [--db URL]
// [--cache H:P] [--cache-ttl S]`. HTTP + SockJS at /sockjs behind haproxy; SIGTERM closes everything and exits 0.
import { createServer } from "node:http"
import sockjs from "sockjs"
import { UsageError } from "../cli/args.ts"
import { jsonLogger } from "../log/line.ts"
import { ensureWorkerSecret } from "../worker/secret.ts"
import { Admission } from "./admission.ts"
import { kernelVersions, memcachedResults, noCache } from "./cache.ts"
import { Connection } from "./connection.ts"
import type { BackendContext } from "./context.ts"
import { sourceAddress } from "./address.ts"
import { httpHandler } from "./http.ts"
import { ensureIdentityKey, IdentityIssuer } from "./identity.ts"
import { parseBackendArgs } from "./options.ts"
import { memoryRegistry, postgresRegistry } from "./registry.ts"
import { FrameRouter } from "./router.ts"
import { WorkerPool } from "./workers.ts"

/** ms between refreshes of the per-worker session counts from the registry (least-loaded placement) */
const LOAD_REFRESH = 2_000
/** ms SIGTERM waits for connections to close before exiting anyway */
const STOP_GRACE = 2_000

const main = async (): Promise<void> => {
  const options = parseBackendArgs(process.argv.slice(2))
  const log = jsonLogger(options.id)
  const secret = await ensureWorkerSecret(options.dataDir)
  const identityKey = await ensureIdentityKey(options.dataDir)
  const router = new FrameRouter()
  const registry = options.db !== undefined ? postgresRegistry(options.db, log, options.sessionMaxAge) : memoryRegistry()
  const pool = new WorkerPool(options.workers, secret, { connectTimeout: options.workerConnectTimeout, reconnect: options.workerReconnect }, {
    onFrame: (_workerId, frame) => router.dispatch(frame),
    onConnected: (workerId) => {
      const address = pool.addressOf(workerId)
      if (address !== undefined) void registry.worker(workerId, address)
      router.reconnected(workerId)
    },
    onLost: (workerId, why) => router.lost(workerId, why),
  }, log)
  const ctx: BackendContext = {
    options,
    pool,
    router,
    registry,
    cache: options.cache !== undefined ? memcachedResults(options.cache, { ttl: options.cacheTtl, timeout: options.cacheTimeout, maxBytes: options.cacheMaxBytes }) : noCache,
    admission: new Admission(options.admission),
    identities: new IdentityIssuer(identityKey, options.identityMaxAge),
    versions: await kernelVersions(),
    log,
  }
  pool.start()
  const loadTimer = setInterval(() => {
    const queriedAt = Date.now()
    void registry.load().then((load) => pool.setSharedLoad(load, queriedAt))
  }, LOAD_REFRESH)

  const connections = new Map<sockjs.Connection, Connection>()
  const sock = sockjs.createServer({
    prefix: "/sockjs",
    log: (severity, message) => {
      if (severity === "error") log.error(`sockjs: ${message}`)
    },
    // haproxy's health checks and timeouts are shorter than sockjs's 25 s default heartbeat
    heartbeat_delay: 10_000,
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
        log.error(`message handling failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`)
        handler.send({ type: "error", id: null, code: "failed", message: "the backend failed to handle this message" })
      }
    })
    conn.on("close", () => {
      handler.close()
      connections.delete(conn)
    })
  })

  const server = createServer(httpHandler(ctx, { connections: () => connections.size }))
  server.on("error", (e) => {
    log.fatal(`cannot serve on ${options.host}:${options.port}: ${e.message}`)
    process.exit(1)
  })
  server.on("clientError", (_e, socket) => socket.destroy())
  server.on("connection", (socket) => socket.on("error", () => undefined))
  sock.installHandlers(server)
  server.listen(options.port, options.host, () => log.info(`listening on ${options.host}:${options.port}; workers ${options.workers.join(",") || "(none)"}; cache ${options.cache ?? "off"}; registry ${options.db !== undefined ? "postgres" : "memory"}`))

  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    log.info(`${signal}: closing ${connections.size} SockJS connection(s)`)
    clearInterval(loadTimer)
    for (const conn of connections.keys()) conn.close("1001", "backend stopping")
    pool.stop()
    ctx.cache.close()
    const exit = (): void => {
      void registry.close().finally(() => process.exit(0))
    }
    server.close(exit)
    server.closeAllConnections()
    setTimeout(exit, STOP_GRACE).unref()
  }
  process.on("SIGTERM", () => stop("SIGTERM"))
  process.on("SIGINT", () => stop("SIGINT"))
}

main().catch((e: unknown) => {
  process.stdout.write(JSON.stringify({ ts: new Date().toISOString(), component: "backend", pid: process.pid, level: "fatal", msg: e instanceof Error ? e.message : String(e) }) + "\n")
  process.exit(e instanceof UsageError ? 2 : 1)
})
