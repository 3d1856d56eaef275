// The backend's worker links against fake workers (a TCP server speaking the handshake): connecting fails by reason
// (Timeout on the TestClock, AuthFailed, Unreachable); a link routes frames once, tells the router when it is lost
// and back; a worker down for minutes of backoff never makes the links supervisor give up.
import { mkdtempSync, rmSync } from "node:fs"
import { createServer, type Server, type Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Logger } from "effect"
import { TestClock } from "effect/testing"
import { WorkerLinks } from "../../src/backend/links.ts"
import { makeBackendOptions, Options } from "../../src/backend/options.ts"
import { Registry } from "../../src/backend/registry.ts"
import { Router, type SessionHandler } from "../../src/backend/router.ts"
import { encodeFrame, FrameDecoder } from "../../src/protocol/frames.ts"
import type { WorkerFrame } from "../../src/protocol/worker.ts"
import { connectWorker, WorkerConnectError } from "../../src/wire/client.ts"
import { ensureWorkerSecret, verifyAnswer } from "../../src/wire/secret.ts"
import { freePort } from "../ports.ts"

interface FakeWorker {
  readonly port: number
  /** "ok" answers a right HMAC with authOk; "silent" never sends its challenge */
  mode: "ok" | "silent"
  /** destroys every connection it accepted */
  drop(): void
  /** sends a frame on every authenticated connection */
  broadcast(frame: WorkerFrame): void
  /** connections open now */
  connections(): number
  close(): Promise<void>
}

const fakeWorker = (secret: Buffer, worker: string, port = 0): Promise<FakeWorker> =>
  new Promise((resolve, reject) => {
    const sockets = new Set<Socket>()
    const authed = new Set<Socket>()
    const server: Server = createServer((socket) => {
      sockets.add(socket)
      socket.on("close", () => (sockets.delete(socket), authed.delete(socket)))
      socket.on("error", () => undefined)
      if (fake.mode === "silent") return
      const nonce = "n".repeat(64)
      const decoder = new FrameDecoder()
      socket.on("data", (chunk: Buffer) => {
        for (const frame of decoder.push(chunk).frames as Array<{ type: string; hmac?: string }>) {
          if (frame.type !== "auth") continue
          if (verifyAnswer(secret, nonce, frame.hmac ?? "")) {
            authed.add(socket)
            socket.write(encodeFrame({ type: "authOk", worker, isolation: "reduced", kernels: ["python"], startedAt: Date.now() }))
          } else socket.end(encodeFrame({ type: "error", message: "authentication failed" }))
        }
      })
      socket.write(encodeFrame({ type: "challenge", nonce, worker, version: 1 }))
    })
    const fake: FakeWorker = {
      port,
      mode: "ok",
      drop: () => {
        for (const s of sockets) s.destroy()
      },
      broadcast: (frame) => {
        for (const s of authed) s.write(encodeFrame(frame))
      },
      connections: () => sockets.size,
      close: () =>
        new Promise((done) => {
          fake.drop()
          server.close(() => done())
        }),
    }
    server.on("error", reject)
    server.listen(port, "127.0.0.1", () => {
      const address = server.address()
      Object.assign(fake, { port: typeof address === "object" && address !== null ? address.port : port })
      resolve(fake)
    })
  })

/** a temp data dir with the worker secret, removed with the test's scope */
const dataDir = Effect.acquireRelease(
  Effect.promise(async () => {
    const dir = mkdtempSync(join(tmpdir(), "sagews-links-"))
    return { dir, secret: await ensureWorkerSecret(dir) }
  }),
  ({ dir }) => Effect.sync(() => rmSync(dir, { recursive: true, force: true })),
)

const worker = (secret: Buffer, id: string, port?: number) =>
  Effect.acquireRelease(Effect.promise(() => fakeWorker(secret, id, port)), (w) => Effect.promise(() => w.close()))

/** real time, for sockets: the TestClock does not move while the kernel delivers a connection */
const realPause = (ms: number) => Effect.promise(() => new Promise<void>((r) => setTimeout(r, ms)))

/** Polls `ok` on real time (up to ~10 s): sockets take real time even when the test clock stands still. */
const until = (what: string, ok: () => boolean, step: Effect.Effect<void> = Effect.void) =>
  Effect.gen(function*() {
    for (let i = 0; i < 2_000; i++) {
      if (ok()) return
      yield* step
      yield* realPause(5)
    }
    return yield* Effect.die(new Error(`timed out waiting until ${what}`))
  })

/** the links layer over one data dir, with a recording logger */
const linksLayer = (dir: string, workers: ReadonlyArray<string>, reconnect: { initial: number; max: number }, lines: Array<string>) => {
  const options = Options.layer(makeBackendOptions({ id: "backend:test", dataDir: dir, port: 0, workers, workerReconnect: reconnect, workerConnectTimeout: 5_000 }))
  const logger = Logger.layer([Logger.make(({ message }) => void lines.push((Array.isArray(message) ? message : [message]).join(" ")))])
  return WorkerLinks.layer.pipe(Layer.provideMerge(Layer.mergeAll(Router.layer, Registry.layer)), Layer.provide(options), Layer.provideMerge(logger))
}

describe("connecting to a worker", () => {
  it.effect("a worker that never answers times out on the Clock, and its socket is dropped", () =>
    Effect.gen(function*() {
      const { secret } = yield* dataDir
      const silent = yield* worker(secret, "worker:9")
      silent.mode = "silent"
      const attempt = yield* Effect.forkChild(Effect.scoped(connectWorker({ port: silent.port, secret, timeout: 3_000 })))
      yield* TestClock.adjust(2_999)
      assert.isUndefined(attempt.pollUnsafe())
      yield* TestClock.adjust(1)
      const error = yield* Effect.flip(Fiber.join(attempt))
      assert.instanceOf(error, WorkerConnectError)
      assert.strictEqual(error.reason, "Timeout")
      assert.strictEqual(error.message, `worker 127.0.0.1:${silent.port} did not authenticate us within 3000 ms`)
      yield* until("the socket is dropped", () => silent.connections() === 0)
    }))

  it.live("a wrong secret is AuthFailed, a closed port Unreachable", () =>
    Effect.gen(function*() {
      const { secret } = yield* dataDir
      const fake = yield* worker(secret, "worker:9")
      const refused = yield* Effect.flip(Effect.scoped(connectWorker({ port: fake.port, secret: Buffer.from("not the secret") })))
      assert.strictEqual(refused.reason, "AuthFailed")
      assert.strictEqual(refused.message, "worker refused us: authentication failed")
      const closed = yield* Effect.promise(freePort)
      const unreachable = yield* Effect.flip(Effect.scoped(connectWorker({ port: closed, secret })))
      assert.strictEqual(unreachable.reason, "Unreachable")
      assert.match(unreachable.message, /closed before authentication: .*ECONNREFUSED/)
    }))
})

describe("worker links", () => {
  it.live("a link routes each frame once, tells the router it is lost, and comes back after the backoff", () =>
    Effect.gen(function*() {
      const { dir, secret } = yield* dataDir
      const fake = yield* worker(secret, "worker:7")
      const lines: Array<string> = []
      const heard: Array<string> = []
      const handler: SessionHandler = {
        workerId: "worker:7",
        frame: (frame) => heard.push(`frame:${frame.type}`),
        lost: (why) => heard.push(`lost:${why}`),
        reconnected: () => heard.push("reconnected"),
      }
      yield* Effect.gen(function*() {
        const links = yield* WorkerLinks
        const router = yield* Router
        router.set("s1", handler)
        yield* until("the link is up", () => links.connected().length === 1)
        assert.strictEqual(links.client("worker:7")?.worker, "worker:7")
        assert.deepStrictEqual(links.kernels(), ["python"])
        assert.isTrue(lines.some((l) => l.startsWith(`connected to worker:7 at 127.0.0.1:${fake.port} (`)))
        assert.deepStrictEqual(heard, ["reconnected"])
        fake.broadcast({ type: "resumed", session: "s1", fromSeq: 1, lastSeq: 0 })
        yield* until("the frame is routed", () => heard.includes("frame:resumed"))
        fake.drop()
        yield* until("the loss is heard", () => heard.some((h) => h.startsWith("lost:")))
        assert.isUndefined(links.client("worker:7"))
        yield* until("the link is back", () => links.connected().length === 1)
        yield* realPause(50)
        assert.deepStrictEqual(heard, ["reconnected", "frame:resumed", "lost:connection closed", "reconnected"])
      }).pipe(Effect.provide(linksLayer(dir, [`127.0.0.1:${fake.port}`], { initial: 20, max: 100 }, lines)))
      // the layer is closed: the connection went with it
      yield* until("the fake worker sees the link close", () => fake.connections() === 0)
    }))

  it.effect("a worker that stays down through hundreds of restarts never makes the supervisor give up", () =>
    Effect.gen(function*() {
      const { dir, secret } = yield* dataDir
      const port = yield* Effect.promise(freePort)
      const lines: Array<string> = []
      const exits = () => lines.filter((l) => l.includes("exited: Crash(cannot reach worker")).length
      yield* Effect.gen(function*() {
        const links = yield* WorkerLinks
        // 100 ms apart on the TestClock: 50 s of restarts, five times the window, ten times per window what
        // the default intensity (3 in 5 s) allows
        for (let i = 1; i <= 500; i++) {
          yield* until(`connect attempt ${i} has failed`, () => exits() >= i)
          yield* TestClock.adjust(100)
        }
        assert.isFalse(lines.some((l) => /giving up/.test(l)))
        yield* worker(secret, "worker:3", port)
        yield* until("the link is up", () => links.connected().length === 1, TestClock.adjust(100))
        assert.strictEqual(links.client("worker:3")?.worker, "worker:3")
      }).pipe(Effect.provide(linksLayer(dir, [`127.0.0.1:${port}`], { initial: 100, max: 100 }, lines)))
    }), 60_000)
})
