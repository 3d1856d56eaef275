// The liveness socket: a unix socket that answers `ok\n` to every connection, for the process actor's banner probe.
import * as fs from "node:fs/promises"
import * as net from "node:net"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import type { Scope } from "effect"
import { log } from "./logger.ts"

/** Listens on `socketPath` (a stale file from a killed predecessor is removed first) until the scope closes. */
export const livenessSocket = (socketPath: string): Effect.Effect<net.Server, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        await fs.mkdir(path.dirname(socketPath), { recursive: true })
        await fs.rm(socketPath, { force: true })
        const server = net.createServer((socket) => {
          socket.on("error", () => {})
          socket.end("ok\n")
        })
        server.on("error", (error) => log("error", `liveness socket ${socketPath}: ${error.message}`))
        await new Promise<void>((resolve, reject) => {
          server.once("error", reject)
          server.listen(socketPath, () => {
            server.off("error", reject)
            resolve()
          })
        })
        return server
      },
      catch: (error) => new Error(`cannot listen on ${socketPath}: ${error instanceof Error ? error.message : String(error)}`),
    }),
    (server) =>
      Effect.promise(async () => {
        await new Promise<void>((resolve) => server.close(() => resolve()))
        await fs.rm(socketPath, { force: true })
      }),
  )
