// 200 live Sage sessions on the one worker of a whole tree, opened over the worker wire, each answering `1+1`
// while all are live; then `sagews stop` with every one of them live: the worker ends them all and exits by
// itself within its shutdown time (its supervisor never escalates to SIGKILL), and nothing is left behind.
// Timing goals live in bench/sessions.ts; here only what happened is asserted.
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { OutputMessage } from "../../src/protocol/worker.ts"
import { type ClientSession, WorkerClient } from "../../src/wire/client.ts"
import { ensureWorkerSecret } from "../../src/wire/secret.ts"
import { defaultUidRange } from "../../src/worker/config.ts"
import { NO_LEFTOVERS, settle } from "../worker/harness.ts"
import { makeStack, type Stack } from "./stack.ts"

/** the worker's default maxSessions, all live at once */
const LIVE = 200
const WORKER = "worker:1"

const displayed = (messages: ReadonlyArray<OutputMessage>): string =>
  messages.flatMap((m) => (m.kind === "display" ? [m.data["text/plain"] ?? ""] : m.kind === "error" ? [`${m.ename}: ${m.evalue}`] : [])).join("")

/** The lines of the worker's log file (<data>/log/worker:1.log): its own, and its actor's events (actors/process.ts). */
const workerLog = (dataDir: string): Array<{ level: string; msg: string }> =>
  readdirSync(join(dataDir, "log"))
    .filter((name) => name.startsWith(`${WORKER}.log`))
    .flatMap((name) => readFileSync(join(dataDir, "log", name), "utf8").split("\n"))
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as { level: string; msg: string })

describe(`${LIVE} live Sage sessions on one worker`, () => {
  let stack: Stack
  let client: WorkerClient | undefined
  let workerPid = 0
  const sessions: Array<ClientSession> = []
  /** `ended` frames the worker itself sent, by reason (not the ones the client makes up when its connection drops) */
  const endedByWorker = new Map<string, number>()

  beforeAll(async () => {
    stack = await makeStack({ backends: 1, extraEnv: { SAGEWS_SESSIONS_MAX_PER_WORKER: String(LIVE) } })
    const start = await stack.cli(["start", "--daemon"])
    expect(start.code, start.stderr).toBe(0)
    const rows = await stack.waitRunning()
    const worker = rows.find((r) => r.id === WORKER)
    workerPid = worker?.pid ?? 0
    expect(workerPid).toBeGreaterThan(0)
    client = await WorkerClient.connect({ port: worker?.port ?? 0, secret: await ensureWorkerSecret(stack.dataDir) })
    client.onFrame((frame) => {
      if (frame.type === "ended") endedByWorker.set(frame.reason._tag, (endedByWorker.get(frame.reason._tag) ?? 0) + 1)
    })
  })

  afterAll(async () => {
    client?.close()
    await stack?.cleanup()
  })

  it(`opens ${LIVE} Sage sessions at once, and each answers 1+1 while all are live`, async () => {
    const live = client!
    expect(live.isolation).toBe("full") // as root: every session is a container
    const opened = await Promise.allSettled(Array.from({ length: LIVE }, async () => {
      const session = await live.open("sage")
      sessions.push(session)
      return displayed(await session.execute("1+1"))
    }))
    const failures = opened.flatMap((o) => (o.status === "rejected" ? [String(o.reason)] : []))
    // on a failure, say what became of the worker (its exits and warnings), not only that the connection closed
    const why = failures.length === 0 ? "" : workerLog(stack.dataDir).filter((l) => l.level !== "info" || /exited|restart/.test(l.msg)).slice(-8).map((l) => l.msg).join(" | ")
    expect(failures.slice(0, 3), `${failures.length} of ${LIVE} opens failed; the worker's log: ${why}`).toEqual([])
    expect(opened.map((o) => (o.status === "fulfilled" ? o.value : undefined))).toEqual(Array(LIVE).fill("2"))
    // all at once: none has ended, each is its own kernel, and each answers again now that all are open
    expect(sessions.filter((s) => s.endedFrame !== undefined).map((s) => s.endedFrame?.message)).toEqual([])
    expect(new Set(sessions.map((s) => s.pid)).size).toBe(LIVE)
    const again = await Promise.all(sessions.map(async (s) => displayed(await s.execute("1+1"))))
    expect(again).toEqual(Array(LIVE).fill("2"))
  })

  it(`stops with all ${LIVE} live: the worker ends them and exits within its shutdown time, and nothing is left`, async () => {
    expect(sessions.length).toBe(LIVE)
    const stop = await stack.cli(["stop"])
    expect(stop.code, stop.stderr).toBe(0)
    // every session was ended by the worker itself, telling us why, before it went
    await Promise.all(sessions.map((s) => s.ended))
    expect(Object.fromEntries(endedByWorker)).toEqual({ WorkerStopped: LIVE })
    // the worker exited on its own after SIGTERM: its supervisor did not have to SIGKILL it
    const log = workerLog(stack.dataDir)
    expect(log.filter((l) => /^stopping: SIGTERM to process group \d+$/.test(l.msg))).toHaveLength(1)
    expect(log.filter((l) => /^still running \d+ ms after SIGTERM: SIGKILL/.test(l.msg)).map((l) => l.msg)).toEqual([])
    expect(log.filter((l) => /^exited \((code -?\d+|signal \w+)\): /.test(l.msg)).map((l) => l.msg)).toEqual(["exited (code 0): Shutdown"])
    // no process of the tree, no session uid's process, no session home, no cgroup of the worker
    expect(await settle({ dataDir: stack.dataDir, uidRange: defaultUidRange(WORKER), proc: { pid: workerPid } })).toEqual(NO_LEFTOVERS)
    expect(stack.processes()).toEqual([])
  })
})
