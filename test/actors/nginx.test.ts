// The nginx actor against the real nginx: started through its spec on a free port in a temp data dir, it
// serves files from the static root and /nginx-healthz, logs where it should, and leaves no process behind.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { get } from "node:http"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import { checkReadableByOthers, nginxLevel, nginxSpec } from "../../actors/nginx.ts"
import { groupGone } from "../../actors/procstat.ts"
import { ExitReason } from "../../supervisors/exit.ts"
import { freePort, living } from "./fixture.ts"

/** A data dir as `sagews init` makes it (0711), with a static root nginx's `nobody` workers can read. */
const dataDir = Effect.acquireRelease(
  Effect.promise(async () => {
    const dir = await mkdtemp(join(tmpdir(), "sagews-nginx-"))
    chmodSync(dir, 0o711)
    mkdirSync(join(dir, "static"), { mode: 0o755 })
    writeFileSync(join(dir, "static", "index.html"), "<!doctype html><title>sagews</title>\n", { mode: 0o644 })
    writeFileSync(join(dir, "static", "app.js"), "console.log('sagews')\n", { mode: 0o644 })
    return dir
  }),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true })),
)



interface Reply {
  readonly status: number
  readonly type: string
  readonly body: string
}

const fetchText = (port: number, path: string) =>
  Effect.callback<Reply, string>((resume) => {
    const req = get({ host: "127.0.0.1", port, path, agent: false }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => (body += chunk))
      res.on("end", () =>
        resume(Effect.succeed({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), body })))
    })
    req.on("error", (e) => resume(Effect.fail(e.message)))
  })

describe("nginx actor", () => {
  it("maps nginx's error log levels", () => {
    assert.strictEqual(nginxLevel("2026/11/22 09:40:54 [notice] 17928#17928: start worker process 17937"), "info")
    assert.strictEqual(nginxLevel("2026/11/22 09:40:54 [warn] 1#1: conflicting server name"), "warn")
    assert.strictEqual(nginxLevel("2026/11/22 09:40:54 [error] 1#1: open() failed"), "error")
    assert.strictEqual(nginxLevel("2026/11/22 09:40:54 [emerg] 1#1: bind() failed"), "fatal")
    assert.strictEqual(nginxLevel("nginx: [emerg] unexpected end of file"), "info")
  })

  it.live("serves the static root and /nginx-healthz, logs requests in its prefix, and stops with SIGQUIT", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir
      const port = yield* freePort
      const { exit, pid } = yield* Effect.gen(function*() {
        const running = yield* nginxSpec({ dataDir: dir, port, staticRoot: join(dir, "static") }).start
        assert.strictEqual(running.port, port)

        const health = yield* fetchText(port, "/nginx-healthz")
        assert.deepStrictEqual([health.status, health.body], [200, "ok\n"])
        const page = yield* fetchText(port, "/")
        assert.strictEqual(page.status, 200)
        assert.include(page.body, "<title>sagews</title>")
        assert.include(page.type, "text/html")
        const script = yield* fetchText(port, "/app.js")
        assert.strictEqual(script.status, 200)
        assert.include(script.type, "javascript")
        assert.strictEqual((yield* fetchText(port, "/no-such-file")).status, 404)

        const access = readFileSync(join(dir, "nginx", "access.log"), "utf8")
        assert.include(access, "\"GET /app.js HTTP/1.1\" 200")
        assert.notInclude(access, "nginx-healthz")
        return { exit: running.exit, pid: running.pid ?? 0 }
      }).pipe(Effect.scoped)

      assert.deepStrictEqual(yield* exit, ExitReason.Shutdown())
      assert.isTrue(groupGone(pid), `nginx's process group ${pid} is still alive`)
      assert.deepStrictEqual(living(dir), [])
      const log = readFileSync(join(dir, "log", "nginx.log"), "utf8").trim().split("\n")
        .map((line) => JSON.parse(line) as { level: string; msg: string })
      const started = log.find((r) => r.msg.includes("start worker process"))
      assert.strictEqual(started?.level, "info")
      assert.isTrue(log.some((r) => r.msg.includes("gracefully shutting down")), "nginx did not stop gracefully (SIGQUIT)")
    }).pipe(Effect.scoped))

  it.live("a stopped nginx master is killed by liveness although its workers still answer", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir
      const port = yield* freePort
      yield* Effect.gen(function*() {
        const running = yield* nginxSpec({ dataDir: dir, port, staticRoot: join(dir, "static") }).start
        process.kill(running.pid ?? 0, "SIGSTOP")
        assert.strictEqual((yield* fetchText(port, "/nginx-healthz")).status, 200)
        const exit = yield* running.exit.pipe(Effect.timeout("10 seconds"))
        assert.deepStrictEqual(exit, ExitReason.Timeout({ limit: "liveness" }))
        assert.isTrue(groupGone(running.pid ?? 0), "the workers went with the master")
      }).pipe(Effect.scoped)
      assert.deepStrictEqual(living(dir), [])
    }).pipe(Effect.scoped))

  it.live("refuses to start, saying what to chmod, when nobody could read the static root", () =>
    Effect.gen(function*() {
      if (process.getuid?.() !== 0) return
      const dir = yield* dataDir
      const port = yield* freePort
      chmodSync(join(dir, "static"), 0o700)
      const started = yield* Effect.result(Effect.scoped(nginxSpec({ dataDir: dir, port, staticRoot: join(dir, "static") }).start))
      assert.isTrue(Result.isFailure(started))
      if (Result.isFailure(started) && started.failure._tag === "Crash") assert.include(started.failure.detail, "chmod o+rx")
      else assert.fail("expected a Crash")
      chmodSync(join(dir, "static"), 0o755)
      chmodSync(dir, 0o700)
      const blocked = yield* Effect.result(checkReadableByOthers(join(dir, "static")))
      assert.isTrue(Result.isFailure(blocked))
      if (Result.isFailure(blocked)) assert.include(blocked.failure, `chmod o+x ${dir}`)
    }).pipe(Effect.scoped))

  it.live("a port already taken fails the start with nginx's own message, and leaves nothing", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir
      const port = yield* freePort
      yield* Effect.acquireRelease(
        Effect.promise(() =>
          new Promise<ReturnType<typeof createServer>>((resolve) => {
            const s = createServer((socket) => socket.destroy())
            s.listen(port, "127.0.0.1", () => resolve(s))
          })
        ),
        (s) => Effect.promise(() => new Promise<void>((resolve) => s.close(() => resolve()))),
      )
      const started = yield* Effect.result(Effect.scoped(nginxSpec({ dataDir: dir, port, staticRoot: join(dir, "static") }).start))
      assert.isTrue(Result.isFailure(started))
      const log = readFileSync(join(dir, "log", "nginx.log"), "utf8")
      assert.include(log, "Address already in use")
      assert.deepStrictEqual(living(dir), [])
    }).pipe(Effect.scoped))
})
