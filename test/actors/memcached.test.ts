// The memcached actor against the real memcached: started through its spec, a set/get round trip from the
// npm client the backends use, a `version` probe that a stopped memcached fails, and nothing left afterwards.
import { createConnection, createServer } from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import Memcached from "memcached"
import { memcachedArgs, memcachedSpec, memcachedUser, memcachedVersion } from "../../actors/memcached.ts"
import { ExitReason } from "../../supervisors/exit.ts"
import { freePort, living, tempDir } from "./fixture.ts"

const dataDir = tempDir("sagews-memcached-")



/** A client like the backends', closed by the scope (it keeps Node alive otherwise). */
const client = (port: number) =>
  Effect.acquireRelease(
    Effect.sync(() => new Memcached(`127.0.0.1:${port}`, { timeout: 2_000 })),
    (c) => Effect.sync(() => c.end()),
  )

const set = (c: Memcached, key: string, value: string) =>
  Effect.callback<void, string>((resume) =>
    c.set(key, value, 60, (err: unknown) => resume(err ? Effect.fail(String(err)) : Effect.void))
  )

const get = (c: Memcached, key: string) =>
  Effect.callback<unknown, string>((resume) =>
    c.get(key, (err: unknown, data: unknown) => resume(err ? Effect.fail(String(err)) : Effect.succeed(data)))
  )

const tcpConnects = (port: number) =>
  Effect.callback<boolean>((resume) => {
    const socket = createConnection({ host: "127.0.0.1", port })
    socket.on("connect", () => {
      socket.destroy()
      resume(Effect.succeed(true))
    })
    socket.on("error", () => resume(Effect.succeed(false)))
  })

describe("memcached actor", () => {
  it("builds memcached's command line, with -u only when a user is given", () => {
    const args = memcachedArgs({ dataDir: "/d", port: 11211, memoryMb: 64 }, undefined)
    assert.deepStrictEqual(args, ["-l", "127.0.0.1", "-p", "11211", "-U", "0", "-m", "64", "-c", "1024", "-t", "2"])
    assert.deepStrictEqual(memcachedArgs({ dataDir: "/d", port: 1, memoryMb: 8 }, "memcache").slice(-2), ["-u", "memcache"])
  })

  it.live("as root, memcached drops to the Debian memcache user", () =>
    Effect.gen(function*() {
      const user = yield* memcachedUser
      if (process.getuid?.() === 0) assert.strictEqual(user, "memcache")
      else assert.isUndefined(user)
    }))

  it.live("starts ready, round-trips a value, answers version, and leaves nothing when its scope closes", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir
      const port = yield* freePort
      const exit = yield* Effect.gen(function*() {
        const running = yield* memcachedSpec({ dataDir: dir, port, memoryMb: 16 }).start
        assert.strictEqual(running.port, port)
        assert.isDefined(running.pid)
        assert.match(yield* memcachedVersion(port), /^1\.\d+\.\d+/)
        const c = yield* client(port)
        yield* set(c, "sagews:test", "factor(x^2-1) = (x-1)*(x+1)")
        assert.strictEqual(yield* get(c, "sagews:test"), "factor(x^2-1) = (x-1)*(x+1)")
        assert.deepStrictEqual(living("memcached", `-p ${port} `), [running.pid])
        return running.exit
      }).pipe(Effect.scoped)
      assert.deepStrictEqual(yield* exit, ExitReason.Shutdown())
      assert.deepStrictEqual(living("memcached", `-p ${port} `), [])
    }).pipe(Effect.scoped))

  it.live("a stopped memcached still accepts TCP but fails the version probe, and liveness kills it", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir
      const port = yield* freePort
      yield* Effect.gen(function*() {
        const running = yield* memcachedSpec({ dataDir: dir, port, memoryMb: 16 }).start
        process.kill(running.pid ?? 0, "SIGSTOP")
        assert.isTrue(yield* tcpConnects(port))
        const probe = yield* Effect.result(memcachedVersion(port, 300))
        assert.isTrue(Result.isFailure(probe))
        if (Result.isFailure(probe)) assert.include(probe.failure, "did not answer")
        const exit = yield* running.exit.pipe(Effect.timeout("10 seconds"))
        assert.deepStrictEqual(exit, ExitReason.Timeout({ limit: "liveness" }))
      }).pipe(Effect.scoped)
      assert.deepStrictEqual(living("memcached", `-p ${port} `), [])
    }).pipe(Effect.scoped))

  it.live("a port already taken fails the start with memcached's exit, and leaves nothing", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir
      const port = yield* freePort
      const blocker = yield* Effect.acquireRelease(
        Effect.promise(() =>
          new Promise<ReturnType<typeof createServer>>((resolve) => {
            const s = createServer((socket) => socket.destroy())
            s.listen(port, "127.0.0.1", () => resolve(s))
          })
        ),
        (s) => Effect.promise(() => new Promise<void>((resolve) => s.close(() => resolve()))),
      )
      assert.isDefined(blocker)
      const started = yield* Effect.result(Effect.scoped(memcachedSpec({ dataDir: dir, port, memoryMb: 16 }).start))
      assert.isTrue(Result.isFailure(started))
      if (Result.isFailure(started)) assert.strictEqual(started.failure._tag, "Crash")
      assert.deepStrictEqual(living("memcached", `-p ${port} `), [])
    }).pipe(Effect.scoped))
})
