// Worker benchmark: new session to first result for sage and python (pool hit, pool miss, cold interpreter
// start), execution round trip at the worker, and memory per idle session. `node bench/worker.ts` prints JSON.
// Its worker start and its per-session memory reader serve bench/sessions.ts too.
import { spawn, execFile } from "node:child_process"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import type { KernelKind } from "../src/protocol/worker.ts"
import { WorkerClient } from "../src/wire/client.ts"
import { ensureWorkerSecret } from "../src/wire/secret.ts"
import { freePort } from "../test/ports.ts"

const run = promisify(execFile)
const SESSIONS_PER_CASE = 15
const COLD_STARTS = 3
const ROUND_TRIPS = 200
const IDLE_SESSIONS = 8
const FIRST_RESULT: Record<KernelKind, string> = { sage: "factor(x^2-1)", python: "factor(x**2-1)" }
const COLD: Record<KernelKind, string> = {
  sage: "from sage.all import *; x = SR.var('x'); print(factor(x**2-1))",
  python: "from sympy import *; import numpy, matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot; x = symbols('x'); print(factor(x**2-1))",
}

export const quantile = (values: ReadonlyArray<number>, q: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN
}
export const round = (n: number): number => Math.round(n * 100) / 100
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

export interface BenchWorker {
  readonly pid: number
  readonly dataDir: string
  readonly client: WorkerClient
  /** SIGTERM, then the ms until the worker process has exited, and its exit code (once: later calls get the same) */
  stop(): Promise<{ readonly ms: number; readonly code: number | null }>
}

/**
 * A real worker (as root its sessions are containers) on a free port with a temp data dir, `config` on top of its
 * defaults (src/worker/config.ts), and a client connected to it; resolves once a forkserver is ready.
 */
export const startBenchWorker = async (config: Record<string, unknown>): Promise<BenchWorker> => {
  const dataDir = await mkdtemp(join(tmpdir(), "sagews-bench-"))
  const port = await freePort()
  await writeFile(join(dataDir, "worker.json"), JSON.stringify(config))
  const proc = spawn(process.execPath, [join(import.meta.dirname, "../src/worker/main.ts"), "--data", dataDir, "--port", String(port), "--config", join(dataDir, "worker.json")], { stdio: ["ignore", "pipe", "inherit"] })
  let tail = "" // its last log lines, for the error when it fails to start
  const ready = new Promise<void>((resolve) =>
    proc.stdout?.on("data", (chunk: Buffer) => {
      tail = (tail + chunk.toString()).slice(-2_000)
      if (chunk.toString().includes("forkserver ready")) resolve()
    })
  )
  const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)))
  let stopped: Promise<{ ms: number; code: number | null }> | undefined
  const stop = (): Promise<{ ms: number; code: number | null }> =>
    (stopped ??= (async () => {
      const started = performance.now()
      proc.kill("SIGTERM")
      const code = await exited
      const ms = performance.now() - started
      await rm(dataDir, { recursive: true, force: true })
      return { ms, code }
    })())
  try {
    const early = exited.then((code) => Promise.reject(new Error(`the bench worker exited (code ${code}) before a forkserver was ready:\n${tail}`)))
    early.catch(() => undefined) // once ready, its later exit is no failure
    await Promise.race([ready, early])
    const client = await WorkerClient.connect({ port, secret: await ensureWorkerSecret(dataDir) })
    return { pid: proc.pid ?? 0, dataDir, client, stop }
  } catch (error) {
    await stop()
    throw error
  }
}

const withWorker = async <A>(kind: KernelKind, pool: number, body: (client: WorkerClient) => Promise<A>): Promise<A> => {
  const worker = await startBenchWorker({ kernels: [kind], pool, uidRange: { first: 260_000, last: 260_999 } })
  try {
    await sleep(300) // let the pool fill
    return await body(worker.client)
  } finally {
    worker.client.close()
    await worker.stop()
  }
}

/** ms from `open` to the first displayed result of a small computation, one session at a time. */
const firstResults = async (client: WorkerClient, kind: KernelKind, pauseMs: number): Promise<Array<number>> => {
  const times: Array<number> = []
  for (let i = 0; i < SESSIONS_PER_CASE; i++) {
    const started = performance.now()
    const session = await client.open(kind)
    await session.execute(FIRST_RESULT[kind])
    times.push(performance.now() - started)
    await session.close()
    await sleep(pauseMs)
  }
  return times
}

/**
 * Every process of the session whose kernel (as root: its container's holder) is `pid`: the members of its own
 * cgroup (src/worker/cgroups.ts: `sagews.<id>.<pid>/k<n>`), so what its user code started counts too. A session
 * without a cgroup of its own (unprivileged worker, no controllers) is its kernel alone.
 */
export const sessionProcesses = async (pid: number): Promise<Array<number>> => {
  const lines = (await readFile(`/proc/${pid}/cgroup`, "utf8")).split("\n")
  const v1 = lines.find((l) => l.split(":")[1]?.split(",").includes("memory"))?.split(":")[2]
  const v2 = lines.find((l) => l.startsWith("0::"))?.slice(3)
  const dir = v1 !== undefined ? `/sys/fs/cgroup/memory${v1}` : `/sys/fs/cgroup${v2 ?? ""}`
  if (!/\/sagews\.[^/]+\/k\d+$/.test(dir)) return [pid]
  return (await readFile(join(dir, "cgroup.procs"), "utf8")).split("\n").filter(Boolean).map(Number)
}

/** PSS and USS (private clean + dirty) in KiB, summed over `pids` from /proc/<pid>/smaps_rollup. */
export const memoryOf = async (pids: ReadonlyArray<number>): Promise<{ pssKiB: number; ussKiB: number }> => {
  let pssKiB = 0
  let ussKiB = 0
  for (const pid of pids) {
    const rollup = await readFile(`/proc/${pid}/smaps_rollup`, "utf8").catch(() => "") // it ended while we looked
    const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(rollup)?.[1] ?? 0)
    pssKiB += kib("Pss")
    ussKiB += kib("Private_Clean") + kib("Private_Dirty")
  }
  return { pssKiB, ussKiB }
}

const memoryPerIdleSession = async (client: WorkerClient, kind: KernelKind): Promise<{ pss: number; uss: number }> => {
  const sessions = await Promise.all(Array.from({ length: IDLE_SESSIONS }, () => client.open(kind)))
  await Promise.all(sessions.map((s) => s.execute("1")))
  let pss = 0
  let uss = 0
  for (const s of sessions) {
    const memory = await memoryOf(await sessionProcesses(s.pid ?? 0))
    pss += memory.pssKiB
    uss += memory.ussKiB
  }
  await Promise.all(sessions.map((s) => s.close()))
  return { pss: pss / IDLE_SESSIONS / 1024, uss: uss / IDLE_SESSIONS / 1024 }
}

export async function benchWorker(kinds: ReadonlyArray<KernelKind> = ["python", "sage"]): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  const put = (key: string, values: ReadonlyArray<number>): void => {
    out[`${key}.p50Ms`] = round(quantile(values, 0.5))
    out[`${key}.p99Ms`] = round(quantile(values, 0.99))
  }
  for (const kind of kinds) {
    await withWorker(kind, 2, async (client) => {
      put(`${kind}.newSession.poolHit`, await firstResults(client, kind, 150))
      const session = await client.open(kind)
      const trips: Array<number> = []
      for (let i = 0; i < ROUND_TRIPS; i++) {
        const started = performance.now()
        await session.execute("1+1")
        trips.push(performance.now() - started)
      }
      put(`${kind}.execRoundTrip`, trips)
      await session.close()
      const memory = await memoryPerIdleSession(client, kind)
      out[`${kind}.idleSession.pssMiB`] = round(memory.pss)
      out[`${kind}.idleSession.ussMiB`] = round(memory.uss)
    })
    await withWorker(kind, 0, async (client) => put(`${kind}.newSession.poolMiss`, await firstResults(client, kind, 0)))
    const cold: Array<number> = []
    for (let i = 0; i < COLD_STARTS; i++) {
      const started = performance.now()
      await run("/usr/bin/python3", ["-c", COLD[kind]])
      cold.push(performance.now() - started)
    }
    put(`${kind}.newSession.coldStart`, cold)
    out[`${kind}.coldOverPoolHit`] = round((out[`${kind}.newSession.coldStart.p50Ms`] ?? NaN) / (out[`${kind}.newSession.poolHit.p50Ms`] ?? NaN))
  }
  return out
}

if (import.meta.main) {
  const kinds = (process.argv[2]?.split(",") ?? ["python", "sage"]) as Array<KernelKind>
  console.log(JSON.stringify(await benchWorker(kinds), null, 2))
}
