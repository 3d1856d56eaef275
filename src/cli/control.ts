// The control socket: the CLI's line to a running tree. One JSON request per connection, one JSON reply.
// Requests are validated with zod; a malformed request gets an error reply, never a crash of the root.
import { existsSync, unlinkSync } from "node:fs"
import { createConnection, createServer, type Server } from "node:net"
import { Effect } from "effect"
import { z } from "zod"
import type { ChildSpec } from "../../supervisors/child.ts"
import { ExitReason } from "../../supervisors/exit.ts"
import { fiberChild } from "../../supervisors/fiber.ts"

export const ControlRequest = z.discriminatedUnion("cmd", [
  z.object({ cmd: z.literal("ping") }),
  z.object({ cmd: z.literal("status") }),
  z.object({ cmd: z.literal("stop") }),
  z.object({ cmd: z.literal("restart"), id: z.string().min(1) }),
])
export type ControlRequest = z.infer<typeof ControlRequest>

export type ControlReply = { readonly ok: true; readonly [key: string]: unknown } | { readonly ok: false; readonly error: string }

/** The longest request we read: the requests are tiny; anything bigger is not from our CLI. */
const MAX_REQUEST_BYTES = 64 * 1024

export const serveControl = (path: string, handle: (req: ControlRequest) => Promise<ControlReply>): Promise<Server> =>
  new Promise((resolveServer, reject) => {
    if (existsSync(path)) unlinkSync(path) // stale: the caller checked that no live tree answers on it
    const server = createServer((socket) => {
      let buf = ""
      let answered = false
      socket.setEncoding("utf8")
      socket.on("error", () => socket.destroy())
      const reply = (r: ControlReply) => socket.end(JSON.stringify(r) + "\n")
      socket.on("data", (chunk: string) => {
        if (answered) return // one request per connection
        buf += chunk
        if (buf.length > MAX_REQUEST_BYTES) {
          answered = true
          return reply({ ok: false, error: `request larger than ${MAX_REQUEST_BYTES} bytes` })
        }
        const nl = buf.indexOf("\n")
        if (nl < 0) return
        answered = true
        let parsed: unknown
        try {
          parsed = JSON.parse(buf.slice(0, nl))
        } catch {
          return reply({ ok: false, error: "request is not JSON" })
        }
        const req = ControlRequest.safeParse(parsed)
        if (!req.success) return reply({ ok: false, error: `bad request: ${req.error.issues.map((i) => `${i.path.join(".") || "cmd"}: ${i.message}`).join("; ")}` })
        handle(req.data).then(reply, (e: unknown) => reply({ ok: false, error: e instanceof Error ? e.message : String(e) }))
      })
    })
    server.on("error", reject)
    server.listen(path, () => {
      server.off("error", reject)
      server.on("error", () => undefined)
      resolveServer(server)
    })
  })

export class NotRunning extends Error {
  override readonly name = "NotRunning"
}

/** Sends one request; NotRunning when nothing listens on the socket. */
export const callControl = (path: string, req: ControlRequest, timeoutMs = 30_000): Promise<ControlReply> =>
  new Promise((resolveReply, reject) => {
    const socket = createConnection(path)
    let buf = ""
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`the tree did not answer "${req.cmd}" within ${timeoutMs} ms (control socket ${path})`))
    }, timeoutMs)
    socket.setEncoding("utf8")
    socket.on("connect", () => socket.write(JSON.stringify(req) + "\n"))
    socket.on("data", (chunk: string) => (buf += chunk))
    socket.on("end", () => {
      clearTimeout(timer)
      try {
        resolveReply(JSON.parse(buf) as ControlReply)
      } catch {
        reject(new Error(`the tree sent a reply that is not JSON: ${JSON.stringify(buf.slice(0, 200))}`))
      }
    })
    socket.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      if (e.code === "ENOENT" || e.code === "ECONNREFUSED") reject(new NotRunning(`sagews is not running (no tree answers on ${path})`))
      else reject(e)
    })
  })

/** The control socket as a child of the root: ready once listening, closed when its scope closes. */
export const controlChild = (path: string, handle: (req: ControlRequest) => Promise<ControlReply>): ChildSpec =>
  fiberChild({
    id: "control",
    shutdown: 2_000,
    ready: Effect.acquireRelease(
      Effect.tryPromise({ try: () => serveControl(path, handle), catch: (e) => ExitReason.Crash({ detail: `control socket ${path}: ${(e as Error).message}` }) }),
      (server) => Effect.sync(() => server.close()),
    ).pipe(Effect.asVoid),
    run: Effect.never,
  })
