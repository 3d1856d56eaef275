// The backend program: HTTP (`GET /healthz`) and SockJS at /sockjs behind haproxy.
// For now the SockJS endpoint echoes each message; the web path (issue 4) routes them to workers.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import sockjs from "sockjs"
import { intOption, parse } from "../cli/args.ts"
import { jsonLogger } from "../log/line.ts"

const { values } = parse(process.argv.slice(2), {
  data: { type: "string" },
  port: { type: "string" },
  id: { type: "string" },
})
const port = intOption("port", values.port)
const id = values.id ?? "backend"
const log = jsonLogger(id)

const echo = sockjs.createServer({
  prefix: "/sockjs",
  log: (severity, message) => {
    if (severity === "error") log.error(message)
  },
})
const connections = new Set<sockjs.Connection>()
echo.on("connection", (conn) => {
  if (!conn) return
  connections.add(conn)
  conn.on("data", (message: string) => conn.write(message))
  conn.on("close", () => connections.delete(conn))
})

const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  if (req.url === "/healthz" || req.url?.startsWith("/healthz?")) {
    res.writeHead(200, { "content-type": "text/plain", "x-sagews-backend": id })
    res.end("ok\n")
    return
  }
  if (req.url?.startsWith("/sockjs")) return // sockjs answers its own requests
  res.writeHead(404, { "content-type": "text/plain" })
  res.end(`no route for ${req.method} ${req.url}\n`)
})
server.on("error", (e) => {
  log.fatal(`cannot serve on 127.0.0.1:${port}: ${e.message}`)
  process.exit(1)
})
server.on("clientError", (_e, socket) => socket.destroy())
echo.installHandlers(server)
server.listen(port, "127.0.0.1", () => log.info(`listening on 127.0.0.1:${port}`))

const stop = (signal: string) => {
  log.info(`${signal}: closing ${connections.size} SockJS connection(s)`)
  for (const conn of connections) conn.close(1001, "backend stopping")
  server.close(() => process.exit(0))
  server.closeAllConnections()
}
process.on("SIGTERM", () => stop("SIGTERM"))
process.on("SIGINT", () => stop("SIGINT"))
