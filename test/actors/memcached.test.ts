// The memcached actor against the real memcached: started through its spec, a set/get round trip over its unix
// socket from the backends' client (src/backend/memcache.ts), a `version` probe that a stopped memcached fails, no TCP or UDP socket at all, a
// socket directory that other uids cannot enter, and nothing left afterwards.
import { execFile } from "node:child_process"
import { chmod, mkdir, stat } from "node:fs/promises"
import { createConnection } from "node:net"
import { dirname } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import { memcachedArgs, memcachedSocket, memcachedSpec, memcachedUser, memcachedVersion } from "../../actors/memcached.ts"
import { Memcache } from "../../src/backend/memcache.ts"
import { ExitReason } from "../../supervisors/exit.ts"
import { living, tempDir } from "./fixture.ts"

/** A data dir as `sagews init` leaves it (0711): memcached's own user must traverse it to reach run/memcached/. */
const dataDir = tempDir("sagews-memcached-").pipe(Effect.tap((dir) => Effect.promise(() => chmod(dir, 0o711))))

/** `nobody`: a uid like a session's, in no group of ours */
const NOBODY = 65_534

/** The backends' client, closed by the scope. (The npm `memcached` 2.2.2 cannot: it appends ":11211" to a socket path.) */
const client = (socket: string) =>
  Effect.acquireRelease(Effect.sync(() => new Memcache(socket, 2_000)), (c) => Effect.sync(() => c.close()))

const connects = (path: string) =>
  Effect.callback<boolean>((resume) => {
    const socket = createConnection({ path })
    socket.on("connect", () => {
      socket.destroy()
      resume(Effect.succeed(true))
    })
    socket.on("error", () => resume(Effect.succeed(false)))
  })

/** Runs a program as `nobody` (supplementary groups dropped); its exit code and output. */
const asNobody = (file: string, args: ReadonlyArray<string>) =>
  Effect.callback<{ code: number; out: string }>((resume) => {
    execFile(file, [...args], { uid: NOBODY, gid: NOBODY, env: { PATH: "/usr/bin:/bin" }, timeout: 10_000 }, (error, stdout, stderr) =>
      resume(Effect.succeed({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, out: `${stdout}${stderr}` })))
  })

/** What a session's uid gets when it looks for memcached's socket and connects to it (python: a cell's tool). */
const pythonProbe = (socket: string) => `
import os, socket
def attempt(what, f):
    try:
        f()
        print(what + ": ok")
    except OSError as e:
        print(what + ": " + type(e).__name__)
attempt("run/memcached", lambda: os.stat(${JSON.stringify(dirname(socket))}))
attempt("socket", lambda: os.stat(${JSON.stringify(socket)}))
attempt("connect", lambda: socket.socket(socket.AF_UNIX).connect(${JSON.stringify(socket)}))
`

/** The TCP and UDP sockets (listening or not) that process `pid` holds, as `ss` prints them. */
const inetSocketsOf = (pid: number) =>
  Effect.callback<ReadonlyArray<string>>((resume) => {
    execFile("ss", ["-H", "-a", "-n", "-p", "-t", "-u"], (error, stdout) =>
      resume(error === null ? Effect.succeed(stdout.split("\n").filter((l) => l.includes(`pid=${pid},`))) : Effect.die(error)))
  })

describe("memcached actor", () => {
  it("builds memcached's command line: a unix socket only, with -u only when a user is given", () => {
    const args = memcachedArgs({ dataDir: "/d", memoryMb: 64 }, undefined)
    assert.deepStrictEqual(args, ["-s", "/d/run/memcached/memcached.sock", "-a", "0600", "-m", "64", "-c", "1024", "-t", "2"])
    assert.deepStrictEqual(memcachedArgs({ dataDir: "/d", memoryMb: 8 }, "memcache").slice(-2), ["-u", "memcache"])
  })

  it.live("as root, memcached drops to the Debian memcache user", () =>
    Effect.gen(function*() {
      const user = yield* memcachedUser
      if (process.getuid?.() === 0) assert.strictEqual(user, "memcache")
      else assert.isUndefined(user)
    }))

  it.live("starts ready, round-trips a value over its socket, answers version, and leaves nothing when its scope closes", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir
      const socket = memcachedSocket(dir)
      const exit = yield* Effect.gen(function*() {
        const running = yield* memcachedSpec({ dataDir: dir, memoryMb: 16 }).start
        assert.isDefined(running.pid)
        assert.match(yield* memcachedVersion(socket), /^1\.\d+\.\d+/)
        const c = yield* client(socket)
        yield* Effect.promise(() => c.set("sagews:test", Buffer.from("factor(x^2-1) = (x-1)*(x+1)"), 60))
        const value = yield* Effect.promise(() => c.get("sagews:test"))
        assert.strictEqual(value?.toString("utf8"), "factor(x^2-1) = (x-1)*(x+1)")
        assert.deepStrictEqual(living("memcached", socket), [running.pid])
        return running.exit
      }).pipe(Effect.scoped)
      assert.deepStrictEqual(yield* exit, ExitReason.Shutdown())
      assert.deepStrictEqual(living("memcached", socket), [])
    }).pipe(Effect.scoped))

  it.live("is out of other uids' reach: no TCP or UDP socket, and its socket directory is closed to them", () =>
    Effect.gen(function*() {
      if (process.getuid?.() !== 0) return // only root can run a client as another uid
      const dir = yield* dataDir
      const socket = memcachedSocket(dir)
      yield* Effect.gen(function*() {
        const running = yield* memcachedSpec({ dataDir: dir, memoryMb: 16 }).start
        assert.deepStrictEqual(yield* inetSocketsOf(running.pid ?? 0), [])
        const st = yield* Effect.promise(() => stat(dirname(socket)))
        assert.strictEqual((st.mode & 0o777).toString(8), "700")
        assert.notStrictEqual(st.uid, NOBODY)
        // run/ is reachable (stat of run/memcached works); run/memcached is not (stat of the socket fails).
        const attempt = yield* asNobody("/usr/bin/python3", ["-c", pythonProbe(socket)])
        assert.deepStrictEqual(attempt.out.trim().split("\n"), ["run/memcached: ok", "socket: PermissionError", "connect: PermissionError"])
        assert.match(yield* memcachedVersion(socket), /^1\./) // root still gets in
      }).pipe(Effect.scoped)
    }).pipe(Effect.scoped))

  it.live("a stopped memcached still accepts connections but fails the version probe, and liveness kills it", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir
      const socket = memcachedSocket(dir)
      yield* Effect.gen(function*() {
        const running = yield* memcachedSpec({ dataDir: dir, memoryMb: 16 }).start
        process.kill(running.pid ?? 0, "SIGSTOP")
        assert.isTrue(yield* connects(socket))
        const probe = yield* Effect.result(memcachedVersion(socket, 300))
        assert.isTrue(Result.isFailure(probe))
        if (Result.isFailure(probe)) assert.include(probe.failure, "did not answer")
        const exit = yield* running.exit.pipe(Effect.timeout("10 seconds"))
        assert.deepStrictEqual(exit, ExitReason.Timeout({ limit: "liveness" }))
      }).pipe(Effect.scoped)
      assert.deepStrictEqual(living("memcached", socket), [])
    }).pipe(Effect.scoped))

  it.live("a socket path it cannot bind fails the start with memcached's exit, and leaves nothing", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir
      const socket = memcachedSocket(dir)
      // a directory where the socket goes: memcached removes a stale socket, but not this
      yield* Effect.promise(() => mkdir(socket, { recursive: true }))
      const started = yield* Effect.result(Effect.scoped(memcachedSpec({ dataDir: dir, memoryMb: 16 }).start))
      assert.isTrue(Result.isFailure(started))
      if (Result.isFailure(started)) assert.strictEqual(started.failure._tag, "Crash")
      assert.deepStrictEqual(living("memcached", socket), [])
    }).pipe(Effect.scoped))
})
