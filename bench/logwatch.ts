// Benchmark of logwatch end to end: lines appended to log files -> rows committed in PostgreSQL, per second,
// for a backlog (lines already there when logwatch starts) and for live writing; and one line's latency when idle.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Exit, Scope } from "effect"
import pg from "pg"
import { logwatchSpec } from "../actors/logwatch.ts"
import { postgresSpec } from "../actors/postgres.ts"
import type { ChildSpec } from "../supervisors/child.ts"
import { serviceUrl } from "../src/db/credentials.ts"

const FILES = 4
const BACKLOG_LINES = 200_000
const LIVE_LINES = 200_000
/** lines per write() while writing live: about what a busy component's log file sees per flush */
const LIVE_CHUNK = 500
const LATENCY_SAMPLES = 20

const PORT = 25_432 + Math.floor(Math.random() * 1000)

const median = (xs: ReadonlyArray<number>): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN

const line = (component: string, n: number): string =>
  `${JSON.stringify({ ts: new Date().toISOString(), component, pid: 4242, level: "info", msg: `request ${n} served in 3 ms` })}\n`

const writeLines = (dir: string, from: number, count: number, chunk: number): void => {
  const fds = Array.from({ length: FILES }, (_, i) => fs.openSync(path.join(dir, `bench:${i}.log`), "a"))
  for (let n = from; n < from + count; n += chunk) {
    const file = (n / chunk) % FILES
    let text = ""
    for (let k = n; k < Math.min(n + chunk, from + count); k++) text += line(`bench:${file}`, k)
    fs.writeSync(fds[file] ?? -1, text)
  }
  for (const fd of fds) fs.closeSync(fd)
}

const start = async (spec: ChildSpec) => {
  const scope = await Effect.runPromise(Scope.make())
  await Effect.runPromise(Scope.provide(scope)(spec.start).pipe(Effect.mapError((e) => new Error(JSON.stringify(e)))))
  return () => Effect.runPromise(Scope.close(scope, Exit.void))
}

export const benchLogwatch = async (): Promise<Record<string, number>> => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "sagews-bench-logwatch-"))
  const logDir = path.join(dataDir, "log")
  fs.mkdirSync(logDir, { recursive: true })
  const stops: Array<() => Promise<void>> = []
  // The service role's URL: the passwords are made here, and the postgres actor sets them in the cluster at start.
  const client = new pg.Client({ connectionString: await serviceUrl(dataDir, { port: PORT }) })
  client.on("error", () => {})
  try {
    stops.push(await start(postgresSpec({ dataDir, port: PORT })))
    await client.connect()
    // Progress from the committed offsets (cheap), not count(*) (which would compete with logwatch for the CPU):
    // the offsets are committed in the same transaction as the rows.
    const shipped = async () =>
      Number((await client.query<{ n: string | null }>(`SELECT sum("offset") AS n FROM log_offsets WHERE file LIKE 'bench:%'`)).rows[0]?.n ?? 0)
    const bytes = () => fs.readdirSync(logDir).filter((f) => f.startsWith("bench:")).reduce((n, f) => n + fs.statSync(path.join(logDir, f)).size, 0)
    const until = async () => {
      const target = bytes()
      while ((await shipped()) < target) await new Promise((resolve) => setTimeout(resolve, 5))
      return performance.now()
    }
    const rows = async () => Number((await client.query<{ n: string }>("SELECT count(*) AS n FROM log WHERE component LIKE 'bench:%'")).rows[0]?.n)
    const results: Record<string, number> = {}

    writeLines(logDir, 0, BACKLOG_LINES, 10_000)
    const backlogBytes = bytes()
    const t0 = performance.now()
    stops.push(await start(logwatchSpec({ dataDir, db: { port: PORT }, host: "bench" })))
    results["logwatch start to ready (ms)"] = Math.round(performance.now() - t0)
    // the rate from the first committed batch on, so that Node's start-up does not count
    let first = 0
    while ((first = await shipped()) === 0) await new Promise((resolve) => setTimeout(resolve, 5))
    const t1first = performance.now()
    const backlogDone = await until()
    results[`backlog of ${BACKLOG_LINES} lines (lines/s)`] =
      Math.round(((backlogBytes - first) / backlogBytes) * BACKLOG_LINES / (backlogDone - t1first) * 1000)

    const t1 = performance.now()
    writeLines(logDir, BACKLOG_LINES, LIVE_LINES, LIVE_CHUNK)
    const written = performance.now()
    const t2 = await until()
    results[`live writing of ${LIVE_LINES} lines, first write to last row (lines/s)`] = Math.round(LIVE_LINES / (t2 - t1) * 1000)
    results["live writing: writer alone (lines/s)"] = Math.round(LIVE_LINES / (written - t1) * 1000)

    const latencies: Array<number> = []
    let total = BACKLOG_LINES + LIVE_LINES
    for (let i = 0; i < LATENCY_SAMPLES; i++) {
      await new Promise((resolve) => setTimeout(resolve, 37))
      const t = performance.now()
      writeLines(logDir, total, 1, 1)
      total += 1
      latencies.push((await until()) - t)
    }
    if ((await rows()) !== total) throw new Error(`expected ${total} rows, found ${await rows()}`)
    results[`one line when idle, write to committed row (ms, median of ${LATENCY_SAMPLES})`] = Math.round(median(latencies))
    return results
  } finally {
    await client.end().catch(() => {})
    for (const stop of stops.reverse()) await stop()
    fs.rmSync(dataDir, { recursive: true, force: true })
  }
}
