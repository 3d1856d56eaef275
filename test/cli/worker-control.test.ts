// The worker's control socket against an in-memory SessionsView: answers, refusals, hostile clients, its lifetime.
import { spawn } from "node:child_process"
import { existsSync, mkdirSync, statSync } from "node:fs"
import { createConnection } from "node:net"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { MAX_REQUEST_BYTES, SessionsReport, workerControlPath } from "../../src/protocol/operator.ts"
import { serveWorkerControl } from "../../src/worker/control.ts"
import { ended, fakeWorker, session, talk, tempDataDir } from "./fixture.ts"

const served = (live = [session("s1", "worker:1", { user: "alice", uid: 20001, pid: 4242, running: true }), session("s2", "worker:1", { kind: "terminal" })]) =>
  Effect.gen(function* () {
    const dir = yield* tempDataDir
    const path = workerControlPath(dir, "worker:1")
    const worker = fakeWorker("worker:1", live, [ended("s0", "worker:1", { _tag: "Timeout", limit: "idle" })])
    yield* serveWorkerControl(path, worker.view)
    return { path, ...worker }
  })

describe("worker control socket", () => {
  it("names the socket after the worker id, under <data>/run", () => {
    assert.strictEqual(workerControlPath("/d", "worker:1"), "/d/run/worker_1.control.sock")
    assert.strictEqual(workerControlPath("/d", "a/b c.d-e"), "/d/run/a_b_c.d-e.control.sock")
  })

  it.live("answers `sessions` with the view's report, on a socket only its owner may use", () =>
    Effect.gen(function* () {
      const { path } = yield* served()
      assert.strictEqual(statSync(path).mode & 0o777, 0o600)
      const { replies, closedByServer } = yield* talk(path, ['{"op":"sessions"}\n'])
      assert.isTrue(closedByServer)
      assert.lengthOf(replies, 1)
      const report = SessionsReport.parse(replies[0])
      assert.strictEqual(report.worker, "worker:1")
      assert.deepStrictEqual(report.live.map((s) => s.id), ["s1", "s2"])
      assert.deepStrictEqual(report.ended[0]!.reason, { _tag: "Timeout", limit: "idle" })
    }))

  it.live("kills a live session (it then shows as ended ClosedByOperator) and refuses an unknown one by name", () =>
    Effect.gen(function* () {
      const { path, state } = yield* served()
      assert.deepStrictEqual((yield* talk(path, ['{"op":"kill","session":"s1"}\n'])).replies, [{ ok: true }])
      assert.deepStrictEqual(state.kills, ["s1"])
      const report = SessionsReport.parse((yield* talk(path, ['{"op":"sessions"}\n'])).replies[0])
      assert.deepStrictEqual(report.live.map((s) => s.id), ["s2"])
      assert.deepStrictEqual(report.ended.find((e) => e.id === "s1")?.reason, { _tag: "ClosedByOperator" })
      assert.deepStrictEqual((yield* talk(path, ['{"op":"kill","session":"s1"}\n'])).replies, [{ error: "no live session s1 on worker:1" }])
      assert.deepStrictEqual((yield* talk(path, ['{"op":"kill","session":"nope"}\n'])).replies, [{ error: "no live session nope on worker:1" }])
    }))

  it.live("answers every line of a connection in order; a malformed one gets an error naming what was wrong", () =>
    Effect.gen(function* () {
      const { path, state } = yield* served()
      const { replies } = yield* talk(path, [
        "{not json\n",
        '{"op":"reboot"}\n',
        '{"session":"s1"}\n',
        '{"op":"kill"}\n',
        '{"op":"kill","session":""}\n',
        '{"op":"sessions","all":true}\n',
        "[1,2]\n",
        '{"op":"sessions"}', // the last line may go without its newline: the half-close ends it
      ])
      const errors = replies.slice(0, 7).map((r) => (r as { error: string }).error)
      assert.match(errors[0]!, /^request is not JSON .*"\{not json"/)
      assert.strictEqual(errors[1], `bad request: op "reboot" is unknown; expected one of "sessions", "kill"`)
      assert.strictEqual(errors[2], `bad request: op is missing; expected one of "sessions", "kill"`)
      assert.match(errors[3]!, /^bad request: session: .*expected string/)
      assert.match(errors[4]!, /^bad request: session: .*>=1 characters/)
      assert.match(errors[5]!, /^bad request: request: Unrecognized key: "all"/)
      assert.match(errors[6]!, /^bad request: request: .*expected object/)
      assert.strictEqual(SessionsReport.parse(replies[7]).live.length, 2)
      assert.deepStrictEqual(state.kills, [])
    }))

  it.live("refuses a line longer than the limit once and closes that connection; the server goes on", () =>
    Effect.gen(function* () {
      const { path } = yield* served()
      const { replies, closedByServer } = yield* talk(path, ['{"op":"sessions","pad":"' + "x".repeat(MAX_REQUEST_BYTES + 10)], { keepOpen: true })
      assert.isTrue(closedByServer)
      assert.deepStrictEqual(replies, [{ error: `request line longer than ${MAX_REQUEST_BYTES} bytes; one request is one line of JSON` }])
      assert.strictEqual(SessionsReport.parse((yield* talk(path, ['{"op":"sessions"}\n'])).replies[0]).worker, "worker:1")
    }))

  it.live("clients that vanish before or right after their request do not disturb it", () =>
    Effect.gen(function* () {
      const { path, state } = yield* served()
      yield* Effect.promise(
        () =>
          new Promise<void>((resolve) => {
            let left = 2
            const gone = () => --left === 0 && resolve()
            const half = createConnection(path, () => half.write('{"op":"kill","sess'))
            half.on("data", () => assert.fail("a half request got an answer"))
            setTimeout(() => (half.destroy(), gone()), 50)
            const whole = createConnection(path, () => whole.end('{"op":"kill","session":"s2"}\n', () => (whole.destroy(), gone())))
            whole.on("error", () => undefined) // the reply may find it gone: that is the point
          }),
      )
      yield* Effect.sleep("50 millis")
      // the complete request was carried out even though nobody stayed for the answer; the half one was not
      assert.deepStrictEqual(state.kills, ["s2"])
      assert.deepStrictEqual(SessionsReport.parse((yield* talk(path, ['{"op":"sessions"}\n'])).replies[0]).live.map((s) => s.id), ["s1"])
    }))

  it.live("closing the scope closes the server, its idle connections and requests in flight, and removes the socket", () =>
    Effect.gen(function* () {
      const dir = yield* tempDataDir
      const path = workerControlPath(dir, "worker:7")
      const scope = yield* Scope.make()
      let interrupted = false
      const hang = { report: Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => (interrupted = true)))), kill: () => Effect.never }
      yield* serveWorkerControl(path, hang).pipe(Scope.provide(scope))
      const closed = (s: ReturnType<typeof createConnection>) => new Promise<void>((r) => (s.on("error", () => undefined), s.on("close", () => r())))
      const idle = createConnection(path)
      const inFlight = createConnection(path, () => inFlight.write('{"op":"sessions"}\n'))
      const bothClosed = Promise.all([closed(idle), closed(inFlight)])
      yield* Effect.sleep("100 millis")
      yield* Scope.close(scope, Exit.void)
      assert.isFalse(existsSync(path))
      assert.isTrue(interrupted)
      yield* Effect.promise(() => bothClosed)
    }))

  it.live("replaces the socket a SIGKILLed worker left behind", () =>
    Effect.gen(function* () {
      const dir = yield* tempDataDir
      const path = workerControlPath(dir, "worker:3")
      mkdirSync(join(dir, "run"))
      const dead = spawn(process.execPath, ["-e", `require("node:net").createServer().listen(${JSON.stringify(path)}, () => console.log("up"))`])
      yield* Effect.promise(() => new Promise<void>((r) => dead.stdout.once("data", () => r())))
      dead.kill("SIGKILL")
      yield* Effect.promise(() => new Promise<void>((r) => (dead.exitCode !== null || dead.signalCode !== null ? r() : dead.once("exit", () => r()))))
      assert.isTrue(existsSync(path))
      yield* serveWorkerControl(path, fakeWorker("worker:3", [session("s9", "worker:3")]).view)
      assert.deepStrictEqual(SessionsReport.parse((yield* talk(path, ['{"op":"sessions"}\n'])).replies[0]).live.map((s) => s.id), ["s9"])
    }))

  it.live("refuses to take over a socket that a live worker answers on", () =>
    Effect.gen(function* () {
      const { path } = yield* served()
      const second = yield* Effect.exit(serveWorkerControl(path, fakeWorker("worker:1", []).view))
      assert.isTrue(Exit.isFailure(second))
      if (Exit.isFailure(second)) assert.match(String(second.cause), /InUse|another worker answers/)
      // the first one still serves
      assert.strictEqual(SessionsReport.parse((yield* talk(path, ['{"op":"sessions"}\n'])).replies[0]).live.length, 2)
    }))
})
