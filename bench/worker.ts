// Worker benchmark: new session to first result for sage and python (pool hit, pool miss, cold interpreter
// start), execution round trip at the worker, and memory per idle session. `node bench/worker.ts` prints JSON.
import { spawn, execFile } from "node:child_process"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import type { KernelKind } from "../src/protocol/worker.ts"
import { WorkerClient } from "../src/worker/client.ts"
import { ensureWorkerSecret } from "../src/worker/secret.ts"
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

const quantile = (values: ReadonlyArray<number>, q: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN
}
const round = (n: number): number => Math.round(n * 100) / 100
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

const withWorker = async <A>(kind: KernelKind, pool: number, body: (client: WorkerClient) => Promise<A>): Promise<A> => {
  const dataDir = await mkdtemp(join(tmpdir(), "sagews-bench-"))
  const port = await freePort()
  await writeFile(join(dataDir, "worker.json"), JSON.stringify({ kernels: [kind], pool, uidRange: { first: 260_000, last: 260_999 } }))
  const proc = spawn(process.execPath, [join(import.meta.dirname, "../src/worker/main.ts"), "--data", dataDir, "--port", String(port), "--config", join(dataDir, "worker.json")], { stdio: ["ignore", "pipe", "inherit"] })
  const ready = new Promise<void>((resolve) => proc.stdout?.on("data", (chunk: Buffer) => chunk.toString().includes("forkserver ready") && resolve()))
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()))
  try {
    await ready
    await sleep(300) // let the pool fill
    const client = await WorkerClient.connect({ port, secret: await ensureWorkerSecret(dataDir) })
    try {
      return await body(client)
    } finally {
      client.close()
    }
  } finally {
    proc.kill("SIGTERM")
    await exited
    await rm(dataDir, { recursive: true, force: true })
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

const parentOf = async (pid: number): Promise<number> => Number((await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]?.split(" ")[1])

/** The kernel and, as root, its container's init and holder (docs/SECURITY.md): all of a session's memory. */
const containerOf = async (kernel: number): Promise<Array<number>> => {
  const pids = [kernel]
  for (let p = await parentOf(kernel); p > 1; p = await parentOf(p)) {
    const comm = (await readFile(`/proc/${p}/comm`, "utf8")).trim()
    if (comm !== "sagews-init" && comm !== "sagews-holder") break
    pids.push(p)
  }
  return pids
}

const memoryPerIdleSession = async (client: WorkerClient, kind: KernelKind): Promise<{ pss: number; uss: number }> => {
  const sessions = await Promise.all(Array.from({ length: IDLE_SESSIONS }, () => client.open(kind)))
  await Promise.all(sessions.map((s) => s.execute("1")))
  let pss = 0
  let uss = 0
  for (const s of sessions) {
    for (const pid of await containerOf(s.pid ?? 0)) {
      const rollup = await readFile(`/proc/${pid}/smaps_rollup`, "utf8")
      const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(rollup)?.[1] ?? 0)
      pss += kib("Pss")
      uss += kib("Private_Clean") + kib("Private_Dirty")
    }
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
