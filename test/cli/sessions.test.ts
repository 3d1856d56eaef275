// `sagews sessions`, `kill` and the sessions line of `status`, against fake workers served by serveWorkerControl in a
// temporary data directory: in process, and once through the `src/cli/sagews` binary.
import { execFile, spawn } from "node:child_process"
import { mkdirSync } from "node:fs"
import { createServer, type Socket } from "node:net"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { killCommand, sessionsCommand, sessionsLine, sessionCounts, workerSockets } from "../../src/cli/sessions.ts"
import { serveControl } from "../../src/cli/control.ts"
import { dataPaths } from "../../src/config/paths.ts"
import { EndedInfo, SessionInfo, workerControlPath } from "../../src/protocol/operator.ts"
import { serveWorkerControl } from "../../src/worker/control.ts"
import { ended, fakeWorker, session, tempDataDir } from "./fixture.ts"

const CRASH = "the kernel wrote something unexpected on its control pipe and then exited without a word"

/** Two answering workers, optionally a third that was SIGKILLed (its socket left behind) and a fourth that hangs. */
const stack = (options: { readonly dead?: boolean; readonly hung?: boolean } = {}) =>
  Effect.gen(function* () {
    const dir = yield* tempDataDir
    mkdirSync(join(dir, "run"))
    const w1 = fakeWorker(
      "worker:1",
      [session("s1", "worker:1", { user: "alice", uid: 20001, running: true, startedAt: Date.now() - 600_000 }), session("s2", "worker:1", { kind: "terminal", user: "bob" })],
      [ended("s0", "worker:1", { _tag: "Timeout", limit: "idle" }, 300_000), ended("e1", "worker:1", { _tag: "ClosedByUser" }, 60_000)],
    )
    const w2 = fakeWorker("worker:2", [session("p1", "worker:2", { kind: "python", startedAt: Date.now() - 30_000 })], [ended("c1", "worker:2", { _tag: "Crash", detail: CRASH })])
    yield* serveWorkerControl(workerControlPath(dir, "worker:1"), w1.view)
    yield* serveWorkerControl(workerControlPath(dir, "worker:2"), w2.view)
    if (options.dead) yield* sigkilledListener(workerControlPath(dir, "worker:3"))
    if (options.hung) yield* hungListener(workerControlPath(dir, "worker:4"))
    return { dir, w1, w2 }
  })

/** What a SIGKILLed worker leaves: a socket file nothing listens on. */
const sigkilledListener = (path: string) =>
  Effect.promise(
    () =>
      new Promise<void>((resolve) => {
        const child = spawn(process.execPath, ["-e", `require("node:net").createServer().listen(${JSON.stringify(path)}, () => console.log("up"))`])
        child.stdout.once("data", () => {
          child.once("exit", () => resolve())
          child.kill("SIGKILL")
        })
      }),
  )

/** A stopped worker: the kernel accepts the connection, nobody answers. */
const hungListener = (path: string) =>
  Effect.acquireRelease(
    Effect.promise(() => {
      const sockets = new Set<Socket>()
      const server = createServer((s) => (sockets.add(s), s.on("error", () => undefined)))
      return new Promise<{ server: typeof server; sockets: Set<Socket> }>((r) => server.listen(path, () => r({ server, sockets })))
    }),
    ({ server, sockets }) => Effect.sync(() => (sockets.forEach((s) => s.destroy()), server.close())),
  )

const io = (dataDir: string) => {
  const lines = { out: [] as string[], err: [] as string[] }
  return { lines, dataDir, out: (l: string) => void lines.out.push(l), err: (l: string) => void lines.err.push(l) }
}

const sagews = (args: ReadonlyArray<string>) =>
  Effect.promise(
    () =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile(join(import.meta.dirname, "../../src/cli/sagews"), [...args], (error, stdout, stderr) =>
          resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr }),
        ),
      ),
  )

describe("sagews sessions", () => {
  it.live("finds every worker control socket in <data>/run, in worker order, and nothing else there", () =>
    Effect.gen(function* () {
      const { dir } = yield* stack()
      yield* serveWorkerControl(workerControlPath(dir, "worker:10"), fakeWorker("worker:10", []).view)
      assert.deepStrictEqual(workerSockets(dir).map((s) => s.name), ["worker_1", "worker_2", "worker_10"])
    }))

  it.live("prints the live sessions of every worker and the ends of the last hour", () =>
    Effect.gen(function* () {
      const { dir } = yield* stack()
      const run = io(dir)
      assert.strictEqual(yield* Effect.promise(() => sessionsCommand({ ...run, json: false })), 0)
      assert.deepStrictEqual(run.lines.err, [])
      const text = run.lines.out.join("\n")
      const lines = text.split("\n")
      assert.match(lines[0]!, /^ID\s+KIND\s+USER\s+WORKER\s+UID\s+AGE\s+IDLE\s+RUNNING\s+LIMITS$/)
      // oldest first, from both workers
      assert.match(lines[1]!, /^s1\s+sage\s+alice\s+worker:1\s+20001\s+10m\s+12s\s+yes\s+wall 60m idle 10m exec 30s mem 2048MiB cpu 60s$/)
      assert.match(lines[2]!, /^s2\s+terminal\s+bob\s+worker:1\s+-\s+5m\s+12s\s+no\s/)
      assert.match(lines[3]!, /^p1\s+python\s+-\s+worker:2\s+-\s+30s\s/)
      assert.include(text, "ended in the last hour:")
      // latest first; a long crash is cut in the table
      const endedRows = lines.slice(lines.indexOf("ended in the last hour:") + 2)
      assert.deepStrictEqual(endedRows.map((l) => l.split(/\s+/)[0]), ["e1", "c1", "s0"])
      assert.match(endedRows[0]!, /^e1\s+python\s+worker:1\s+ClosedByUser\s+60s ago$/)
      assert.match(endedRows[1]!, /^c1\s+python\s+worker:2\s+Crash\(the kernel wrote .*…\)\s+2m ago$/)
      assert.match(endedRows[2]!, /^s0\s+python\s+worker:1\s+Timeout\(idle\)\s+5m ago$/)
    }))

  it.live("--json merges the workers' reports, whole", () =>
    Effect.gen(function* () {
      const { dir } = yield* stack()
      const run = io(dir)
      assert.strictEqual(yield* Effect.promise(() => sessionsCommand({ ...run, json: true })), 0)
      const json = JSON.parse(run.lines.out.join("")) as { live: unknown[]; ended: unknown[]; unreachable: unknown[] }
      assert.deepStrictEqual(json.live.map((s) => SessionInfo.parse(s).id), ["s1", "s2", "p1"])
      assert.deepStrictEqual(json.ended.map((e) => EndedInfo.parse(e).id), ["e1", "c1", "s0"])
      assert.deepStrictEqual(EndedInfo.parse(json.ended[1]).reason, { _tag: "Crash", detail: CRASH })
      assert.deepStrictEqual(json.unreachable, [])
    }))

  it.live("kill ends the session on the worker that has it, which then lists it as ended ClosedByOperator", () =>
    Effect.gen(function* () {
      const { dir, w1, w2 } = yield* stack()
      const run = io(dir)
      assert.strictEqual(yield* Effect.promise(() => killCommand({ ...run, session: "s2" })), 0)
      assert.deepStrictEqual(run.lines.out, [`sagews: ended session s2 (terminal of bob) on worker:1: ClosedByOperator; its page says "an operator ended this session"`])
      assert.deepStrictEqual(w1.state.kills, ["s2"])
      assert.deepStrictEqual(w2.state.kills, [])
      const after = io(dir)
      yield* Effect.promise(() => sessionsCommand({ ...after, json: true }))
      const json = JSON.parse(after.lines.out.join("")) as { live: SessionInfo[]; ended: EndedInfo[] }
      assert.deepStrictEqual(json.live.map((s) => s.id), ["s1", "p1"])
      assert.deepStrictEqual(json.ended.find((e) => e.id === "s2")?.reason, { _tag: "ClosedByOperator" })
    }))

  it.live("kill of a session no worker runs says so, points at `sagews sessions`, and exits 1", () =>
    Effect.gen(function* () {
      const { dir, w1, w2 } = yield* stack()
      const run = io(dir)
      assert.strictEqual(yield* Effect.promise(() => killCommand({ ...run, session: "nope" })), 1)
      assert.deepStrictEqual(run.lines.err, ["sagews: no live session nope on any worker; `sagews sessions` lists them"])
      assert.deepStrictEqual([...w1.state.kills, ...w2.state.kills], [])
    }))

  it.live("a worker whose socket does not answer (SIGKILLed, or hung) is named and hides none of the others", () =>
    Effect.gen(function* () {
      const { dir } = yield* stack({ dead: true, hung: true })
      const run = io(dir)
      assert.strictEqual(yield* Effect.promise(() => sessionsCommand({ ...run, json: true, timeoutMs: 300 })), 1)
      const json = JSON.parse(run.lines.out.join("")) as { live: SessionInfo[]; unreachable: Array<{ worker: string; error: string }> }
      assert.deepStrictEqual(json.live.map((s) => s.id), ["s1", "s2", "p1"])
      assert.deepStrictEqual(json.unreachable.map((u) => u.worker), ["worker_3", "worker_4"])
      assert.match(json.unreachable[0]!.error, /nothing listens on the socket/)
      assert.match(json.unreachable[1]!.error, /did not answer within 300 ms \(the worker is hung or stopped\)/)
      assert.strictEqual(run.lines.err.length, 2)
      assert.match(run.lines.err[0]!, /^sagews: worker_3 \(.*worker_3\.control\.sock\) did not answer: nothing listens/)

      // a kill still reaches the worker that has the session; an unknown one may be on the silent workers
      const kill = io(dir)
      assert.strictEqual(yield* Effect.promise(() => killCommand({ ...kill, session: "p1", timeoutMs: 300 })), 0)
      const unknown = io(dir)
      assert.strictEqual(yield* Effect.promise(() => killCommand({ ...unknown, session: "nope", timeoutMs: 300 })), 1)
      assert.strictEqual(
        unknown.lines.err.at(-1),
        "sagews: no live session nope on any worker that answered (worker_3, worker_4 did not: it may be there); `sagews sessions` lists them",
      )
    }))

  it.live("with no worker socket at all, it says sagews is not running", () =>
    Effect.gen(function* () {
      const dir = yield* tempDataDir
      const run = io(dir)
      assert.strictEqual(yield* Effect.promise(() => sessionsCommand({ ...run, json: false })), 1)
      assert.match(run.lines.err[0]!, /^sagews: no worker control socket in .*\/run: is sagews running\? \(sagews status\)$/)
    }))

  it("the status line counts sessions by kind and ends by reason", () => {
    const report = {
      worker: "worker:1",
      live: [session("a", "w"), session("b", "w"), session("c", "w", { kind: "terminal" })],
      ended: [
        ...["1", "2", "3", "4"].map((i) => ended(i, "w", { _tag: "ClosedByUser" })),
        ended("5", "w", { _tag: "Timeout", limit: "idle" }),
        ended("6", "w", { _tag: "Crash", detail: "x" }),
        ended("7", "w", { _tag: "Crash", detail: "y" }),
      ],
    }
    assert.strictEqual(sessionsLine(sessionCounts(report)), "sessions   live 3 (sage 2, terminal 1) · ended in the last hour 7 (ClosedByUser 4, Crash 2, Timeout(idle) 1)")
    assert.strictEqual(sessionsLine(sessionCounts({ worker: "w", live: [], ended: [] })), "sessions   live 0 · ended in the last hour 0")
  })

  it.live("through the binary: sessions, --json, kill known and unknown, and status with a sessions line per worker", () =>
    Effect.gen(function* () {
      const { dir, w1 } = yield* stack({ dead: true })
      const table = yield* sagews(["sessions", "--data", dir])
      assert.strictEqual(table.code, 1)
      assert.match(table.stdout, /^ID\s+KIND/)
      assert.match(table.stdout, /\ns1\s+sage\s+alice/)
      assert.match(table.stderr, /worker_3 .* did not answer/)
      const json = yield* sagews(["sessions", "--json", "--data", dir])
      assert.strictEqual((JSON.parse(json.stdout) as { live: unknown[] }).live.length, 3)

      const killed = yield* sagews(["kill", "s1", "--data", dir])
      assert.strictEqual(killed.code, 0)
      assert.match(killed.stdout, /^sagews: ended session s1 \(sage of alice\) on worker:1: ClosedByOperator/)
      assert.deepStrictEqual(w1.state.kills, ["s1"])
      const missing = yield* sagews(["kill", "s1", "--data", dir])
      assert.strictEqual(missing.code, 1)
      assert.match(missing.stderr, /no live session s1 on any worker that answered \(worker_3 did not: it may be there\); `sagews sessions` lists them/)
      assert.strictEqual((yield* sagews(["kill", "--data", dir])).code, 2)

      // `status`: the root's control socket gives the rows; each worker row gets its sessions line
      const rows = ["worker:1", "worker:2", "worker:3"].map((id) => ({ id, type: "worker", state: "running", pid: 1, port: null, uptimeSeconds: 5, restarts: 0, lastExit: null }))
      const root = yield* Effect.acquireRelease(
        Effect.promise(() => serveControl(dataPaths(dir).control, async () => ({ ok: true, components: rows, events: [], isolation: "full", url: "http://127.0.0.1:8080/" }))),
        (server) => Effect.sync(() => server.close()),
      )
      void root
      const status = yield* sagews(["status", "--data", dir])
      assert.strictEqual(status.code, 0)
      const lines = status.stdout.split("\n")
      const below = (id: string) => lines[lines.findIndex((l) => l.startsWith(id)) + 1]
      assert.strictEqual(below("worker:1"), "  └─ sessions   live 1 (terminal 1) · ended in the last hour 3 (ClosedByOperator 1, ClosedByUser 1, Timeout(idle) 1)")
      assert.strictEqual(below("worker:2"), "  └─ sessions   live 1 (python 1) · ended in the last hour 1 (Crash 1)")
      assert.match(below("worker:3")!, /^ {2}└─ sessions {3}unknown: its control socket did not answer: nothing listens on the socket/)
      const statusJson = JSON.parse((yield* sagews(["status", "--json", "--data", dir])).stdout) as { components: Array<{ id: string; sessions?: unknown }> }
      assert.deepStrictEqual(statusJson.components[1]!.sessions, { live: 1, liveByKind: { python: 1 }, ended: 1, endedByReason: { Crash: 1 } })
      assert.match((statusJson.components[2]!.sessions as { error: string }).error, /nothing listens/)
    }))
})
