// The process actor against real programs: readiness, exit reasons, the stop protocol, logs, liveness and
// leftovers of a previous life. Every test checks that nothing of what it started is left running.
import { spawn } from "node:child_process"
import { mkdir, readFile, rm, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { exitReasonOf } from "../../actors/exitreason.ts"
import { pidPath, processSpec, type ProcessOptions } from "../../actors/process.ts"
import { groupGone, groupMembers, readStat } from "../../actors/procstat.ts"
import { ExitReason } from "../../supervisors/exit.ts"
import { freePort, tempDir } from "./fixture.ts"

const fixture = fileURLToPath(new URL("./fixtures/child.mjs", import.meta.url))

const dataDir = tempDir("sagews-process-")


const node = (dir: string, id: string, args: ReadonlyArray<string>, rest: Partial<ProcessOptions> = {}): ProcessOptions => ({
  id,
  command: process.execPath,
  args: [fixture, ...args],
  dataDir: dir,
  ready: { _tag: "line", pattern: /^ready$/ },
  readyTimeout: 10_000,
  ...rest,
})

/** Starts a spec in a scope of its own, as a supervisor does, so a test can close it when it wants. */
const start = (options: ProcessOptions) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const running = yield* Scope.provide(scope)(processSpec(options).start).pipe(
      Effect.onError(() => Scope.close(scope, Exit.void)),
    )
    const pid = running.pid ?? 0
    return { scope, running, pid, stop: Scope.close(scope, Exit.void) }
  })

/** Nothing of group `pgid` runs (zombies of reparented grandchildren aside) and the main process was reaped. */
const assertGone = (pgid: number) => {
  assert.isTrue(groupGone(pgid), `process group ${pgid} still has ${JSON.stringify(groupMembers(pgid))}`)
  assert.isUndefined(readStat(pgid), `process ${pgid} was not reaped`)
}

const logRecords = (dir: string, id: string) =>
  Effect.promise(async () =>
    (await readFile(join(dir, "log", `${id}.log`), "utf8")).split("\n").filter((line) => line !== "")
      .map((line) => JSON.parse(line) as Record<string, unknown>)
  )

const fileExists = (path: string) => Effect.promise(() => readFile(path).then(() => true, () => false))

describe("process actor", () => {
  it.live("readiness over tcp, then SIGTERM on close: exit Shutdown, pid file removed", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir
      const port = yield* freePort
      const child = yield* start(node(dir, "tcp", ["serve", "tcp", String(port), "300"], { ready: { _tag: "tcp", port }, port }))
      assert.strictEqual(child.running.port, port)
      assert.isTrue(yield* fileExists(pidPath(dir, "tcp")))
      const [pid, starttime] = (yield* Effect.promise(() => readFile(pidPath(dir, "tcp"), "utf8"))).trim().split(" ")
      assert.strictEqual(Number(pid), child.pid)
      assert.strictEqual(starttime, readStat(child.pid)?.starttime)
      yield* child.stop
      assert.deepStrictEqual(yield* child.running.exit, ExitReason.Shutdown())
      assertGone(child.pid)
      assert.isFalse(yield* fileExists(pidPath(dir, "tcp")))
      const msgs = (yield* logRecords(dir, "tcp")).map((r) => r.msg)
      assert.include(msgs, "got SIGTERM")
      assert.isFalse(msgs.some((m) => String(m).startsWith("still running")))
    }))

  it.live("readiness over http and by a line of output", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir
      const port = yield* freePort
      const http = yield* start(node(dir, "http", ["serve", "http", String(port), "200"], { ready: { _tag: "http", port, path: "/healthz" } }))
      const res = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/healthz`))
      assert.strictEqual(res.status, 200)
      const line = yield* start(node(dir, "line", ["serve", "tcp", "0"], { ready: { _tag: "line", pattern: /listening on/ } }))
      yield* http.stop
      yield* line.stop
      assertGone(http.pid)
      assertGone(line.pid)
    }))

  it.live("readiness over a banner", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir
      const port = yield* freePort
      const child = yield* start(node(dir, "banner", ["serve", "banner", String(port), "100"], { ready: { _tag: "banner", port } }))
      yield* child.stop
      assertGone(child.pid)
    }))

  it.live("exit mapping: 0 is Normal, 3 is a Crash with stderr, an outside SIGKILL is Killed", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir
      const normal = yield* start(node(dir, "zero", ["exit", "0", "bye"]))
      process.kill(normal.pid, "SIGUSR1")
      assert.deepStrictEqual(yield* normal.running.exit, ExitReason.Normal())
      assertGone(normal.pid)

      const crash = yield* start(node(dir, "three", ["exit", "3", "something broke badly"]))
      process.kill(crash.pid, "SIGUSR1")
      const reason = yield* crash.running.exit
      assert.strictEqual(reason._tag, "Crash")
      if (reason._tag === "Crash") {
        assert.strictEqual(reason.code, 3)
        assert.include(reason.detail, "something broke badly")
      }
      assertGone(crash.pid)

      const killed = yield* start(node(dir, "killed", ["exit", "0", "never"]))
      process.kill(killed.pid, "SIGKILL")
      assert.deepStrictEqual(yield* killed.running.exit, ExitReason.Killed({ signal: "SIGKILL" }))
      assertGone(killed.pid)
      yield* Effect.all([normal.stop, crash.stop, killed.stop])
      assert.isFalse(yield* fileExists(pidPath(dir, "three")))
    }))

  it.live("a child that exits before it is ready fails the start with its exit reason", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir
      const reason = yield* start(node(dir, "bad", ["no-such-mode"])).pipe(Effect.flip)
      assert.strictEqual(reason._tag, "Crash")
      if (reason._tag === "Crash") {
        assert.strictEqual(reason.code, 64)
        assert.include(reason.detail, "unknown mode no-such-mode")
      }
      const missing = yield* start({ ...node(dir, "missing", []), command: "/nonexistent/program" }).pipe(Effect.flip)
      assert.strictEqual(missing._tag, "Crash")
    }))

  it.live("readiness timeout kills the group: Timeout(readiness)", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir
      const port = yield* freePort
      const options = node(dir, "slow", ["serve", "tcp", "0"], { ready: { _tag: "tcp", port }, readyTimeout: 500 })
      const reason = yield* start(options).pipe(Effect.flip)
      assert.deepStrictEqual(reason, ExitReason.Timeout({ limit: "readiness" }))
      const spawned = (yield* logRecords(dir, "slow")).find((r) => String(r.msg).startsWith("spawned"))
      assertGone(Number(spawned?.pid))
      assert.isFalse(yield* fileExists(pidPath(dir, "slow")))
    }))

  it.live("a start interrupted during readiness (the supervisor stopping) leaves nothing behind", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir
      const port = yield* freePort
      const options = node(dir, "interrupted", ["serve", "tcp", "0"], { ready: { _tag: "tcp", port } })
      const outcome = yield* start(options).pipe(Effect.timeoutOption("400 millis"))
      assert.strictEqual(outcome._tag, "None")
      const records = yield* logRecords(dir, "interrupted")
      assertGone(Number(records.find((r) => String(r.msg).startsWith("spawned"))?.pid))
      assert.isTrue(records.some((r) => String(r.msg).startsWith("stopping: SIGTERM")))
      assert.isFalse(yield* fileExists(pidPath(dir, "interrupted")))
    }))

  it.live.skipIf(process.getuid?.() !== 0)("drops privileges to uid/gid", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir
      const child = yield* start({
        id: "nobody",
        command: "/bin/sh",
        args: ["-c", "echo uid=$(id -u) gid=$(id -g) groups=$(id -G); exec sleep 1000"],
        dataDir: dir,
        cwd: "/",
        uid: 65534,
        gid: 65534,
        ready: { _tag: "line", pattern: /^uid=/ },
        shutdown: "brutal",
      })
      const msgs = (yield* logRecords(dir, "nobody")).map((r) => String(r.msg))
      assert.include(msgs, "uid=65534 gid=65534 groups=65534")
      yield* child.stop
      assert.deepStrictEqual(yield* child.running.exit, ExitReason.Shutdown())
      assertGone(child.pid)
    }))

  it.live("a program that ignores SIGTERM is SIGKILLed after `shutdown` ms with its grandchildren", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir
      const child = yield* start({
        id: "stubborn",
        command: "/bin/sh",
        args: ["-c", `trap "" TERM; sleep 1000 & echo started; sleep 1000`],
        dataDir: dir,
        ready: { _tag: "line", pattern: /started/ },
        shutdown: 300,
      })
      while (groupMembers(child.pid).length < 3) yield* Effect.sleep("10 millis")
      const grandchildren = groupMembers(child.pid).map((p) => p.pid).filter((pid) => pid !== child.pid)
      assert.lengthOf(grandchildren, 2)
      yield* child.stop
      assert.deepStrictEqual(yield* child.running.exit, ExitReason.Shutdown())
      assertGone(child.pid)
      for (const pid of grandchildren) assert.isTrue(readStat(pid) === undefined || readStat(pid)?.state === "Z")
      const msgs = (yield* logRecords(dir, "stubborn")).map((r) => String(r.msg))
      assert.isTrue(msgs.some((m) => m.startsWith("still running 300 ms after SIGTERM")), msgs.join("\n"))
    }))

  it.live("log lines are JSON with ts, component, pid, level, msg: wrapped and passed through", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir
      const json = yield* start(node(dir, "json", ["print"], { logFormat: "json" }))
      const wrap = yield* start(node(dir, "wrap", ["print"], { levelOf: (line, stream) => (line === "ready" ? "debug" : stream === "stdout" ? "info" : "warn") }))
      yield* json.stop
      yield* wrap.stop
      assertGone(json.pid)
      assertGone(wrap.pid)
      for (const id of ["json", "wrap"]) {
        for (const record of yield* logRecords(dir, id)) {
          assert.isString(record.ts)
          assert.isFalse(Number.isNaN(Date.parse(String(record.ts))))
          assert.isString(record.component)
          assert.isNumber(record.pid)
          assert.include(["debug", "info", "warn", "error", "fatal"], record.level)
          assert.isString(record.msg)
        }
      }
      const byMsg = (records: ReadonlyArray<Record<string, unknown>>, msg: string) => records.find((r) => r.msg === msg)
      const j = yield* logRecords(dir, "json")
      assert.deepInclude(byMsg(j, "full"), { component: "inner", pid: 1, level: "warn", extra: 7, ts: "2020-01-01T00:00:00.000Z" })
      assert.deepInclude(byMsg(j, "partial"), { component: "json", pid: json.pid, level: "info" })
      assert.deepInclude(byMsg(j, "{not json"), { component: "json", level: "info" })
      assert.deepInclude(byMsg(j, "plain err"), { component: "json", level: "error" })
      const w = yield* logRecords(dir, "wrap")
      assert.deepInclude(byMsg(w, "plain out"), { component: "wrap", pid: wrap.pid, level: "info" })
      assert.deepInclude(byMsg(w, "plain err"), { level: "warn" })
      assert.deepInclude(byMsg(w, "ready"), { level: "debug" })
      assert.isDefined(w.find((r) => String(r.msg).includes('"msg":"full"')))
    }))

  it.live("the log file is reopened when it was removed (rotation)", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir
      const child = yield* start(node(dir, "rotate", ["exit", "5", "after rotation"]))
      yield* Effect.promise(() => rm(join(dir, "log", "rotate.log")))
      // the rotation check runs at most once a second: let it come due
      yield* Effect.sleep("1100 millis")
      process.kill(child.pid, "SIGUSR1")
      yield* child.running.exit
      yield* child.stop
      const msgs = (yield* logRecords(dir, "rotate")).map((r) => String(r.msg))
      assert.include(msgs, "after rotation")
      assertGone(child.pid)
    }))

  it.live("a SIGSTOPped process is killed by liveness: Timeout(liveness)", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir
      const port = yield* freePort
      const liveness = { probe: { _tag: "tcp", port } as const, interval: 100, timeout: 300, failures: 3 }
      const child = yield* start(node(dir, "hung", ["serve", "tcp", String(port)], { ready: { _tag: "tcp", port }, liveness }))
      process.kill(child.pid, "SIGSTOP")
      // how fast is a benchmark's business (bench/tree.ts); here: it is found and killed, for that reason
      assert.deepStrictEqual(yield* child.running.exit, ExitReason.Timeout({ limit: "liveness" }))
      yield* child.stop
      assertGone(child.pid)
    }))

  it.live("a leftover of a previous life is killed before the new spawn", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir
      const old = spawn("/bin/sh", ["-c", "sleep 1000 & sleep 1000"], { detached: true, stdio: "ignore" })
      const oldPid = old.pid ?? 0
      while (groupMembers(oldPid).length < 2) yield* Effect.sleep("10 millis")
      yield* Effect.promise(() => mkdir(join(dir, "run"), { recursive: true }))
      yield* Effect.promise(() => writeFile(pidPath(dir, "again"), `${oldPid} ${readStat(oldPid)?.starttime}\n`))
      const child = yield* start(node(dir, "again", ["exit", "0", "x"]))
      assert.isTrue(groupGone(oldPid))
      const msgs = (yield* logRecords(dir, "again")).map((r) => String(r.msg))
      const killedAt = msgs.findIndex((m) => m.startsWith(`killed process group ${oldPid}`))
      assert.isAtLeast(killedAt, 0)
      assert.isBelow(killedAt, msgs.findIndex((m) => m.startsWith("spawned")))
      yield* child.stop
      assertGone(child.pid)
    }))

  it.live("a pid file naming a reused pid (other start time) is left alone", () =>
    Effect.gen(function*() {
      const dir = yield* dataDir
      const other = spawn("/bin/sleep", ["1000"], { detached: true, stdio: "ignore" })
      const otherPid = other.pid ?? 0
      yield* Effect.promise(() => mkdir(join(dir, "run"), { recursive: true }))
      yield* Effect.promise(() => writeFile(pidPath(dir, "reused"), `${otherPid} 1\n`))
      const child = yield* start(node(dir, "reused", ["exit", "0", "x"]))
      assert.strictEqual(readStat(otherPid)?.state === "Z", false)
      assert.isDefined(readStat(otherPid))
      yield* child.stop
      assertGone(child.pid)
      const exited = new Promise((resolve) => other.once("exit", resolve))
      process.kill(otherPid, "SIGKILL")
      yield* Effect.promise(() => exited)
      assertGone(otherPid)
    }))
})

describe("exit reasons and options", () => {
  const end = { code: null, signal: null, requested: undefined, stderrTail: [], oomKillsDuring: 0 }
  it("maps how a process ended", () => {
    assert.deepStrictEqual(exitReasonOf({ ...end, code: 0 }), ExitReason.Normal())
    assert.deepStrictEqual(exitReasonOf({ ...end, code: 2 }), ExitReason.Crash({ code: 2, detail: "exited with code 2" }))
    assert.deepStrictEqual(exitReasonOf({ ...end, signal: "SIGSEGV" }), ExitReason.Killed({ signal: "SIGSEGV" }))
    assert.deepStrictEqual(exitReasonOf({ ...end, signal: "SIGKILL", oomKillsDuring: 1 }), ExitReason.OutOfMemory())
    assert.deepStrictEqual(exitReasonOf({ ...end, signal: "SIGKILL", requested: "liveness" }), ExitReason.Timeout({ limit: "liveness" }))
    assert.deepStrictEqual(exitReasonOf({ ...end, code: 1, requested: "shutdown" }), ExitReason.Shutdown())
  })

  it("rejects options that cannot work, naming the field", () => {
    const base = { id: "x", command: "true", args: [], dataDir: "/tmp", ready: { _tag: "tcp", port: 1 } } as const
    assert.throws(() => processSpec({ ...base, liveness: { probe: { _tag: "line", pattern: /x/ }, interval: 1, timeout: 1, failures: 1 } }), /liveness.probe/)
    assert.throws(() => processSpec({ ...base, readyTimeout: 0 }), /readyTimeout is 0/)
    assert.throws(() => processSpec({ ...base, id: "../x" }), /id is/)
  })
})
