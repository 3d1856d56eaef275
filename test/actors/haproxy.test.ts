// The haproxy actor against real haproxy, nginx and small Node backends: routing, stickiness, a reload under
// load that drops nothing and keeps an upgraded connection, a refused bad config, and no process left behind.
import { createHash } from "node:crypto"
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { createServer as createHttpServer, get } from "node:http"
import { connect, type Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Result } from "effect"
import {
  haproxyCommand, haproxyLevel, haproxyPaths, haproxySpec, haproxyValues, invalidBackends, parseShowProc, reloadHaproxy, serverLines, showProc,
  type HaproxyBackend,
} from "../../actors/haproxy.ts"
import { nginxSpec } from "../../actors/nginx.ts"
import { groupGone } from "../../actors/procstat.ts"
import { freePort, living } from "./fixture.ts"



const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/** A stand-in for our backend: `/healthz`, any other path answered with its name, and an echoing upgrade. */
const testBackend = (name: string) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<{ name: string; port: number; close: () => void }>((resolve) => {
        const sockets = new Set<Socket>()
        const server = createHttpServer((req, res) => {
          res.setHeader("content-type", "text/plain")
          res.end(req.url === "/healthz" ? "ok" : `${name} ${req.url}`)
        })
        server.on("connection", (s) => {
          sockets.add(s)
          s.on("error", () => {})
          s.on("close", () => sockets.delete(s))
        })
        server.on("upgrade", (req, socket: Socket) => {
          socket.on("error", () => {})
          const accept = createHash("sha1").update(`${req.headers["sec-websocket-key"]}${WS_GUID}`).digest("base64")
          socket.write(
            `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
          )
          socket.on("data", (chunk) => socket.write(`${name}:${String(chunk)}`))
        })
        server.on("error", () => {})
        server.listen(0, "127.0.0.1", () => {
          const address = server.address()
          const port = typeof address === "object" && address !== null ? address.port : 0
          resolve({ name, port, close: () => (server.close(), sockets.forEach((s) => s.destroy())) })
        })
      })
    ),
    (b) => Effect.sync(() => b.close()),
  )

interface Reply {
  readonly status: number
  readonly body: string
  readonly cookie: string
}

const request = (port: number, path: string, cookie?: string) =>
  Effect.callback<Reply, string>((resume) => {
    const headers = cookie === undefined ? {} : { cookie }
    const req = get({ host: "127.0.0.1", port, path, agent: false, headers }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => (body += chunk))
      res.on("end", () =>
        resume(Effect.succeed({ status: res.statusCode ?? 0, body, cookie: String(res.headers["set-cookie"] ?? "") })))
      res.on("error", (e) => resume(Effect.fail(`${path}: ${e.message}`)))
    })
    req.on("error", (e) => resume(Effect.fail(`${path}: ${e.message}`)))
  })

/** An upgraded (WebSocket-like) connection through haproxy; `say` sends a line and waits for the echo. */
const tunnel = (port: number) =>
  Effect.acquireRelease(
    Effect.callback<Socket, string>((resume) => {
      const socket = connect({ host: "127.0.0.1", port })
      socket.setEncoding("utf8")
      socket.on("error", (e) => resume(Effect.fail(e.message)))
      socket.on("connect", () =>
        socket.write(
          "GET /sockjs/websocket HTTP/1.1\r\nHost: sagews\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        ))
      socket.once("data", (head: string) =>
        resume(head.startsWith("HTTP/1.1 101") ? Effect.succeed(socket) : Effect.fail(`no upgrade: ${head}`)))
    }),
    (socket) => Effect.sync(() => socket.destroy()),
  )

const say = (socket: Socket, text: string) =>
  Effect.callback<string, string>((resume) => {
    if (socket.destroyed) return resume(Effect.fail("the upgraded connection was closed"))
    socket.once("data", (chunk: string) => resume(Effect.succeed(chunk)))
    socket.once("close", () => resume(Effect.fail("the upgraded connection was closed")))
    socket.write(text)
  }).pipe(Effect.timeout("2 seconds"))

/** nginx, two test backends and haproxy in a temp data dir; everything stops when the scope closes. */
const stack = Effect.gen(function*() {
  const dir = yield* Effect.acquireRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), "sagews-haproxy-"))),
    (d) => Effect.promise(() => rm(d, { recursive: true, force: true })),
  )
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => assert.deepStrictEqual(living(dir), [], "haproxy or nginx left running"))
  )
  chmodSync(dir, 0o711)
  mkdirSync(join(dir, "static"), { mode: 0o755 })
  writeFileSync(join(dir, "static", "index.html"), "<title>sagews</title>\n", { mode: 0o644 })
  const nginxPort = yield* freePort
  yield* nginxSpec({ dataDir: dir, port: nginxPort, staticRoot: join(dir, "static") }).start
  const b1 = yield* testBackend("backend:1")
  const b2 = yield* testBackend("backend:2")
  const port = yield* freePort
  const backends: ReadonlyArray<HaproxyBackend> = [{ name: b1.name, port: b1.port }]
  let pid = 0
  yield* Effect.addFinalizer(() => Effect.sync(() => assert.isTrue(groupGone(pid), `haproxy group ${pid} left`)))
  const spec = haproxySpec({ dataDir: dir, port, bind: "127.0.0.1", backends, nginxPort })
  const running = yield* spec.start
  pid = running.pid ?? 0
  return { dir, port, pid, b1, b2, spec, running }
})

describe("haproxy actor", () => {
  it("parses show proc, renders server lines, rejects unsafe names, maps log levels", () => {
    const proc = "#<PID> <type> <reloads> <uptime> <version>\n17931 master 1 [failed: 2] 0d00h00m05s 2.6.12\n"
      + "# workers\n18074 worker 0 0d00h00m00s 2.6.12\n# old workers\n17940 worker 1 0d00h00m05s 2.6.12\n# programs\n"
    assert.deepStrictEqual(parseShowProc(proc), { master: 17931, failedReloads: 2, workers: [18074] })
    assert.isUndefined(parseShowProc("Unknown command\n"))
    assert.strictEqual(serverLines([{ name: "backend:1", port: 9001 }]), "    server backend:1 127.0.0.1:9001 check cookie backend:1")
    assert.include(invalidBackends([{ name: "a b", port: 1 }]) ?? "", "not a valid haproxy server name")
    assert.include(invalidBackends([{ name: "a", port: 70_000 }]) ?? "", "port 70000")
    assert.isUndefined(invalidBackends([{ name: "backend:1", port: 9001 }]))
    assert.include(invalidBackends([{ name: "dyn_x", port: 1 }]) ?? "", "names remote backends added at run time")
    assert.match(serverLines([{ name: "b1", port: 9001, key: "backend:1" }]), /^ {4}server b1 127\.0\.0\.1:9001 check cookie b1 id \d{4,}$/)
    assert.strictEqual(haproxyLevel("Server be_app/backend:1 is DOWN, reason: Layer4", "stdout"), "warn")
    assert.strictEqual(haproxyLevel("[ALERT]    (1) : config : parsing error", "stderr"), "error")
    assert.strictEqual(haproxyLevel("[NOTICE]   (1) : New worker (2) forked", "stderr"), "info")
    const values = haproxyValues({ dataDir: "/d", port: 1, bind: "127.0.0.1", backends: [], nginxPort: 2 }, { api: 70_000, tunnel: 1_810_000 })
    assert.deepStrictEqual([values["api_timeout"], values["api_timeout_seconds"], values["tunnel_timeout"]], ["70000ms", 70, "1810000ms"])
  })

  it.live("routes / to nginx and /sockjs, /api, /healthz to the backends, with a stickiness cookie for /api", () =>
    Effect.gen(function*() {
      const s = yield* stack
      const page = yield* request(s.port, "/")
      assert.deepStrictEqual([page.status, page.body], [200, "<title>sagews</title>\n"])
      const sock = yield* request(s.port, "/sockjs/info")
      assert.deepStrictEqual([sock.status, sock.body], [200, "backend:1 /sockjs/info"])
      assert.strictEqual(sock.cookie, "", "SockJS sticks by hashing its session URLs, the same on every haproxy, not by a cookie")
      const api = yield* request(s.port, "/api/v1/eval")
      assert.strictEqual(api.body, "backend:1 /api/v1/eval")
      assert.match(api.cookie, /^SRV=backend:1; path=\//)
      assert.strictEqual((yield* request(s.port, "/healthz")).body, "ok")
      assert.strictEqual((yield* request(s.port, "/sockjsx")).status, 404, "a prefix look-alike goes to nginx")

      yield* reloadHaproxy(s.dir, [{ name: "backend:1", port: s.b1.port }, { name: "backend:2", port: s.b2.port }])
      for (let i = 0; i < 4; i++) {
        const r = yield* request(s.port, "/api/v1/eval", "SRV=backend:2")
        assert.strictEqual(r.body, "backend:2 /api/v1/eval", "the SRV cookie pins an API client to its backend")
        assert.strictEqual(r.cookie, "", "no new cookie once the client has one")
      }
      const seen = new Set<string>()
      for (let i = 0; i < 4; i++) seen.add((yield* request(s.port, "/api/v1/eval")).body)
      assert.strictEqual(seen.size, 2, "without a cookie API requests are balanced")
      // SockJS clients without a cookie jar: every request of one session still reaches one backend
      for (const session of ["s1", "s2", "s3", "s4"]) {
        const backends = new Set<string>()
        for (const transport of ["xhr_streaming", "xhr_send", "xhr_send", "xhr"]) {
          backends.add((yield* request(s.port, `/sockjs/000/${session}/${transport}`)).body.split(" ")[0]!)
        }
        assert.strictEqual(backends.size, 1, `session ${session} stays on one backend without a cookie`)
      }
      // the raw WebSocket has one URL for every client: its connections are balanced, not hashed onto one backend
      const ws1 = yield* tunnel(s.port)
      const ws2 = yield* tunnel(s.port)
      assert.deepStrictEqual(new Set([yield* say(ws1, "x"), yield* say(ws2, "x")]), new Set(["backend:1:x", "backend:2:x"]))

      // with no backend to take it, an /api request gets haproxy's own answer, in JSON rather than an HTML page
      yield* reloadHaproxy(s.dir, [{ name: "gone", port: yield* freePort }])
      const none = yield* request(s.port, "/api/v1/status")
      assert.strictEqual(none.status, 503)
      assert.deepStrictEqual(JSON.parse(none.body), {
        error: "failed", message: "no backend is available right now; try again in a few seconds", retryAfterMs: 1000,
      })
    }).pipe(Effect.scoped))

  it.live("a reload under a request loop drops nothing and keeps an upgraded connection open", () =>
    Effect.gen(function*() {
      const s = yield* stack
      const masterBefore = (yield* showProc(s.dir)).master
      const ws = yield* tunnel(s.port)
      assert.strictEqual(yield* say(ws, "before"), "backend:1:before")

      let ok = 0
      const failures: Array<string> = []
      const loop = yield* Effect.forkChild(Effect.forever(
        Effect.gen(function*() {
          for (const path of ["/sockjs/info", "/"]) {
            const r = yield* Effect.result(request(s.port, path))
            if (Result.isSuccess(r) && r.success.status === 200) ok++
            else failures.push(Result.isSuccess(r) ? `${path}: ${r.success.status}` : r.failure)
          }
        }),
      ))
      yield* Effect.sleep("300 millis")
      yield* reloadHaproxy(s.dir, [{ name: "backend:1", port: s.b1.port }, { name: "backend:2", port: s.b2.port }])
      yield* Effect.sleep("300 millis")
      yield* reloadHaproxy(s.dir, [{ name: "backend:2", port: s.b2.port }])
      yield* Effect.sleep("300 millis")
      yield* Fiber.interrupt(loop)

      assert.deepStrictEqual(failures, [])
      assert.isAbove(ok, 20)
      assert.strictEqual((yield* request(s.port, "/sockjs/info")).body, "backend:2 /sockjs/info")
      assert.strictEqual(yield* say(ws, "after"), "backend:1:after", "the upgraded connection survived both reloads")
      assert.strictEqual((yield* showProc(s.dir)).master, masterBefore, "the master stays; only workers change")

      // runtime state set through the admin socket survives a reload
      yield* haproxyCommand(haproxyPaths(s.dir).adminSocket, "set server be_app/backend:2 state drain")
      yield* reloadHaproxy(s.dir, [{ name: "backend:2", port: s.b2.port }])
      const state = yield* haproxyCommand(haproxyPaths(s.dir).adminSocket, "show servers state be_app")
      const line = state.split("\n").find((l) => l.includes(" backend:2 "))?.split(" ")
      assert.strictEqual(Number(line?.[6]) & 0x08, 0x08, `backend:2 should still be draining: ${state}`)
    }).pipe(Effect.scoped))

  it.live("a bad config on reload is refused with a clear error and the old config keeps serving", () =>
    Effect.gen(function*() {
      const s = yield* stack
      const before = yield* showProc(s.dir)
      const config = readFileSync(haproxyPaths(s.dir).config, "utf8")
      const dup = yield* Effect.result(reloadHaproxy(s.dir, [{ name: "b", port: s.b1.port }, { name: "b", port: s.b2.port }]))
      assert.isTrue(Result.isFailure(dup))
      if (Result.isFailure(dup)) {
        assert.strictEqual(dup.failure.reason, "invalid-config")
        assert.match(dup.failure.message, /^haproxy rejected the config \(kept as .*haproxy\.cfg\.rejected\): .*another server named 'b'/)
      }
      const bad = yield* Effect.result(reloadHaproxy(s.dir, [{ name: "backend 1\n  bind :80", port: s.b1.port }]))
      assert.isTrue(Result.isFailure(bad))
      if (Result.isFailure(bad)) assert.strictEqual(bad.failure.reason, "invalid-backends")

      assert.strictEqual(readFileSync(haproxyPaths(s.dir).config, "utf8"), config)
      assert.deepStrictEqual(yield* showProc(s.dir), before, "no reload happened")
      assert.strictEqual((yield* request(s.port, "/sockjs/info")).body, "backend:1 /sockjs/info")
      assert.strictEqual((yield* request(s.port, "/")).status, 200)
    }).pipe(Effect.scoped))

  it.live("a restart after SIGKILL keeps the backend set of the last reload", () =>
    Effect.gen(function*() {
      const s = yield* stack
      yield* reloadHaproxy(s.dir, [{ name: "backend:2", port: s.b2.port }])
      process.kill(-s.pid, "SIGKILL")
      assert.deepStrictEqual(yield* s.running.exit, { _tag: "Killed", signal: "SIGKILL" })
      const again = yield* s.spec.start
      assert.notStrictEqual(again.pid, s.pid)
      assert.strictEqual((yield* request(s.port, "/sockjs/info")).body, "backend:2 /sockjs/info")
      assert.strictEqual((yield* request(s.port, "/")).status, 200)
    }).pipe(Effect.scoped))

  it.live("a config haproxy rejects fails the start with haproxy's reason, before anything runs", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.acquireRelease(
        Effect.promise(() => mkdtemp(join(tmpdir(), "sagews-haproxy-"))),
        (d) => Effect.promise(() => rm(d, { recursive: true, force: true })),
      )
      const port = yield* freePort
      const backends = [{ name: "b", port: 1 }, { name: "b", port: 2 }]
      const started = yield* Effect.result(
        Effect.scoped(haproxySpec({ dataDir: dir, port, bind: "127.0.0.1", backends, nginxPort: 1 }).start),
      )
      assert.isTrue(Result.isFailure(started))
      if (Result.isFailure(started) && started.failure._tag === "Crash") {
        assert.include(started.failure.detail, "another server named 'b'")
      } else assert.fail("expected a Crash")
      assert.deepStrictEqual(living(dir), [])
    }).pipe(Effect.scoped))

  it.live("a stopped master stops answering its CLI, so liveness kills haproxy", () =>
    Effect.gen(function*() {
      const s = yield* stack
      process.kill(s.pid, "SIGSTOP")
      const r = yield* Effect.result(showProc(s.dir))
      assert.isTrue(Result.isFailure(r))
      if (Result.isFailure(r)) assert.include(r.failure, "did not answer")
      const exit = yield* s.running.exit.pipe(Effect.timeout("10 seconds"))
      assert.deepStrictEqual(exit, { _tag: "Timeout", limit: "liveness" })
    }).pipe(Effect.scoped))
})
