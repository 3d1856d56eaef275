// Many Sage sessions on one worker, through the worker wire against a real worker (as root: each session a
// container): a new session's first result on a pool hit and a pool miss beside a cold `import sage.all`; then
// 200 live sessions: the time to open them, their memory (PSS, USS of each session's cgroup) beside a lone Sage
// process's, and the worker's stop time with all of them live beside an idle worker's and beside the kernel's own
// time to kill and reap as many forks of a Sage process. `node bench/sessions.ts` prints JSON.
import { execFile, spawn } from "node:child_process"
import { readdir, readFile, readlink } from "node:fs/promises"
import { promisify } from "node:util"
import type { OutputMessage } from "../src/protocol/worker.ts"
import type { ClientSession, WorkerClient } from "../src/wire/client.ts"
import { memoryOf, quantile, round, sessionProcesses, sleep, startBenchWorker } from "./worker.ts"

const run = promisify(execFile)

/** live sessions at once on one worker: the worker's default maxSessions */
const LIVE = 200
const HITS = 15
const MISSES = 10
const COLD_STARTS = 3
/** the pool a default worker keeps (src/worker/config.ts) */
const POOL = 2
/** ms after a pool hit for its replacement to be forked, contained and connected */
const REFILL_PAUSE = 400
/** session uids of this bench's workers: no test or other bench uses them (a worker kills what its range left) */
const UIDS = { first: 264_000, last: 264_999 }
const FIRST = "1+1"
/** a lone Sage process: the same first result, then it stays alive for its memory to be read */
const LONE = "from sage.all import *; print(Integer(1)+Integer(1), flush=True); import sys; sys.stdin.read()"
/**
 * The kernel's share of a stop: a Sage process forks argv[1] children that each compute 1+1 (as many as the
 * sessions had processes: holder, init and kernel are all forks of the forkserver), then SIGKILLs and reaps them
 * all at once, and prints the ms that took. Tearing down that many copies of Sage's address space is the floor.
 */
const FORKS_KILLED = `
import os, signal, sys, time
from sage.all import Integer
Integer(1) + Integer(1)
children = []
for _ in range(int(sys.argv[1])):
    pid = os.fork()
    if pid == 0:
        Integer(1) + Integer(1)
        signal.pause()
        os._exit(0)
    children.append(pid)
time.sleep(1)
started = time.monotonic()
for pid in children:
    os.kill(pid, signal.SIGKILL)
for pid in children:
    os.waitpid(pid, 0)
print(round((time.monotonic() - started) * 1000, 2))
`

const plain = (messages: ReadonlyArray<OutputMessage>): string =>
  messages.flatMap((m) => (m.kind === "display" ? [m.data["text/plain"] ?? ""] : m.kind === "error" ? [`${m.ename}: ${m.evalue}`] : [])).join("")

/** open → the displayed result of `1+1`, in ms; the session stays open. */
const firstResult = async (client: WorkerClient): Promise<{ session: ClientSession; ms: number }> => {
  const started = performance.now()
  const session = await client.open("sage")
  const result = plain(await session.execute(FIRST))
  const ms = performance.now() - started
  if (result !== "2") throw new Error(`session ${session.id} answered ${JSON.stringify(result)} to ${FIRST}`)
  return { session, ms }
}

const oneAtATime = async (client: WorkerClient, count: number, pauseMs: number): Promise<Array<number>> => {
  const times: Array<number> = []
  for (let i = 0; i < count; i++) {
    const { session, ms } = await firstResult(client)
    times.push(ms)
    await session.close()
    await sleep(pauseMs)
  }
  return times
}

/** A fresh `/usr/bin/python3` importing sage.all: ms to the same first result, and its memory then. */
const loneProcess = async (): Promise<{ ms: number; pssKiB: number; ussKiB: number }> => {
  const started = performance.now()
  const child = spawn("/usr/bin/python3", ["-c", LONE], { stdio: ["pipe", "pipe", "inherit"] })
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const answered = await new Promise<string>((resolve, reject) => {
    child.stdout.once("data", (chunk: Buffer) => resolve(chunk.toString().trim()))
    void exited.then(() => reject(new Error("the lone Sage process exited before its first result")))
  })
  const ms = performance.now() - started
  if (answered !== "2") throw new Error(`the lone Sage process printed ${JSON.stringify(answered)}`)
  const memory = await memoryOf([child.pid ?? 0])
  child.stdin.end()
  await exited
  return { ms, ...memory }
}

const forksKilledMs = async (count: number): Promise<number> => Number((await run("/usr/bin/python3", ["-c", FORKS_KILLED, String(count)])).stdout.trim())

const childrenOf = async (pid: number): Promise<Array<number>> => {
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => [])
  const lists = await Promise.all(tasks.map((t) => readFile(`/proc/${pid}/task/${t}/children`, "utf8").catch(() => "")))
  return lists.flatMap((l) => l.split(" ").filter(Boolean).map(Number))
}

/** The worker's forkserver: the python3 below it (the worker → unshare → forkserver.py), whose pages every session shares. */
const forkserverOf = async (worker: number): Promise<number | undefined> => {
  for (let level = await childrenOf(worker), depth = 0; depth < 3; level = (await Promise.all(level.map(childrenOf))).flat(), depth++) {
    for (const pid of level) {
      const exe = await readlink(`/proc/${pid}/exe`).catch(() => "")
      const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")
      if (exe.includes("python") && cmdline.includes("forkserver.py")) return pid
    }
  }
  return undefined
}

const MiB = (kib: number): number => round(kib / 1024)

export async function benchSessions(): Promise<Record<string, number>> {
  // the floor first, on a machine with nothing else of ours running
  const lone: Array<{ ms: number; pssKiB: number; ussKiB: number }> = []
  for (let i = 0; i < COLD_STARTS; i++) lone.push(await loneProcess())

  // pool 0: every open forks; then the stop of a worker with no session, the floor of the stop below
  const missWorker = await startBenchWorker({ kernels: ["sage"], pool: 0, uidRange: UIDS })
  const misses = await oneAtATime(missWorker.client, MISSES, 0).catch(async (error: unknown) => {
    await missWorker.stop()
    throw error
  })
  const idleStop = await missWorker.stop() // with its client still connected, like the stop below
  missWorker.client.close()

  const worker = await startBenchWorker({ kernels: ["sage"], pool: POOL, maxSessions: LIVE, uidRange: UIDS })
  try {
    await sleep(REFILL_PAUSE) // let the pool fill
    const hits = await oneAtATime(worker.client, HITS, REFILL_PAUSE)

    // LIVE opens at once: the pool's few are hits, the rest forks waited for in a queue
    const started = performance.now()
    const opened = await Promise.allSettled(Array.from({ length: LIVE }, () => firstResult(worker.client)))
    const openAllMs = performance.now() - started
    const failed = opened.flatMap((o) => (o.status === "rejected" ? [String(o.reason)] : []))
    if (failed.length > 0) throw new Error(`${failed.length} of ${LIVE} sessions opened at once failed; the first: ${failed[0]}`)
    const live = opened.flatMap((o) => (o.status === "fulfilled" ? [o.value] : []))

    const processes = await Promise.all(live.map(({ session }) => sessionProcesses(session.pid ?? 0)))
    const perSession = await Promise.all(processes.map(memoryOf))
    const forkserver = await forkserverOf(worker.pid)
    const template = await memoryOf(forkserver !== undefined ? [forkserver] : [])
    const workerItself = await memoryOf([worker.pid])
    const pss = perSession.map((m) => m.pssKiB)
    const uss = perSession.map((m) => m.ussKiB)
    const sum = (xs: ReadonlyArray<number>): number => xs.reduce((a, b) => a + b, 0)
    const lonePss = quantile(lone.map((l) => l.pssKiB), 0.5)

    // the stop: SIGTERM → every session's `ended` frame at the client → the worker's exit
    let ended = 0
    let lastEndedAt = 0
    worker.client.onFrame((frame) => {
      if (frame.type !== "ended") return
      ended++
      lastEndedAt = performance.now()
    })
    const stopping = performance.now()
    const stop = await worker.stop()
    worker.client.close()
    if (stop.code !== 0) throw new Error(`the worker exited with code ${stop.code} when stopped with ${LIVE} sessions live`)
    if (ended !== LIVE) throw new Error(`the worker sent ${ended} ended frames for ${LIVE} live sessions when stopped`)
    const processCount = processes.reduce((n, p) => n + p.length, 0)
    const killFloorMs = await forksKilledMs(processCount)

    const hitP50 = quantile(hits, 0.5)
    const missP50 = quantile(misses, 0.5)
    const coldP50 = quantile(lone.map((l) => l.ms), 0.5)
    // each figure followed by its floor or peer (`.floor.`, `.peer.`) from this same run
    const n = `sessions${LIVE}`
    return {
      "sage.firstResult.poolHit.p50Ms": round(hitP50),
      "sage.firstResult.poolHit.p90Ms": round(quantile(hits, 0.9)),
      "sage.firstResult.poolMiss.p50Ms": round(missP50),
      "sage.firstResult.poolMiss.p90Ms": round(quantile(misses, 0.9)),
      "sage.firstResult.floor.coldImport.p50Ms": round(coldP50),
      "sage.firstResult.floor.coldImport.p90Ms": round(quantile(lone.map((l) => l.ms), 0.9)),
      "sage.firstResult.coldOverPoolHit": round(coldP50 / hitP50),
      "sage.firstResult.coldOverPoolMiss": round(coldP50 / missP50),
      [`${n}.openAtOnce.allFirstResultsMs`]: round(openAllMs),
      [`${n}.openAtOnce.firstResult.p50Ms`]: round(quantile(live.map((l) => l.ms), 0.5)),
      [`${n}.openAtOnce.firstResult.p90Ms`]: round(quantile(live.map((l) => l.ms), 0.9)),
      [`${n}.openAtOnce.peer.missesOneAtATimeMs`]: round(LIVE * missP50),
      [`${n}.openAtOnce.peer.coldProcessesOneAtATimeMs`]: round(LIVE * coldP50),
      [`${n}.perSession.pssMiB.p50`]: MiB(quantile(pss, 0.5)),
      [`${n}.perSession.ussMiB.p50`]: MiB(quantile(uss, 0.5)),
      [`${n}.perSession.ussMiB.p90`]: MiB(quantile(uss, 0.9)),
      [`${n}.perSession.peer.loneProcess.pssMiB`]: MiB(lonePss),
      [`${n}.perSession.peer.loneProcess.ussMiB`]: MiB(quantile(lone.map((l) => l.ussKiB), 0.5)),
      [`${n}.total.pssMiB`]: MiB(sum(pss)),
      [`${n}.total.ussMiB`]: MiB(sum(uss)),
      [`${n}.total.forkserver.pssMiB`]: MiB(template.pssKiB),
      [`${n}.total.worker.pssMiB`]: MiB(workerItself.pssKiB),
      [`${n}.total.peer.loneProcesses.pssMiB`]: MiB(LIVE * lonePss),
      [`${n}.workerStop.ms`]: round(stop.ms),
      [`${n}.workerStop.lastEndedFrameMs`]: round(lastEndedAt - stopping),
      [`${n}.workerStop.floor.noSession.ms`]: round(idleStop.ms),
      [`${n}.workerStop.floor.killAndReapForks.ms`]: round(killFloorMs),
      [`${n}.workerStop.floor.killAndReapForks.count`]: processCount,
    }
  } catch (error) {
    await worker.stop()
    worker.client.close()
    throw error
  }
}

if (import.meta.main) console.log(JSON.stringify(await benchSessions(), null, 2))
