// The must-show, through the real actors: 100,000 lines across several log files, two of them rotated while
// written, logwatch SIGKILLed twice and PostgreSQL SIGKILLed and restarted once -> every line in `log` exactly once.
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import * as path from "node:path"
import { Effect } from "effect"
import { afterEach, expect, it } from "vitest"
import { logwatchSpec } from "../../actors/logwatch.ts"
import { postgresSpec } from "../../actors/postgres.ts"
import { formatExit } from "../../supervisors/exit.ts"
import { freePort, leftoverProcesses, sleep, type Started, startSpec, tempDataDir, TestCluster, waitFor } from "./fixture.ts"

const COMPONENTS = ["alpha", "beta", "gamma", "delta"]
const TOTAL = 100_000
const TICKS = 100
const PER_TICK = TOTAL / TICKS / COMPONENTS.length
const TICK_MS = 60
/** lines written to a file after it was renamed, before the writer reopens its path */
const AFTER_RENAME = 25

let dataDir = ""
let started: Array<Started> = []

afterEach(async () => {
  for (const s of started.reverse()) await s.stop()
  started = []
  expect(await leftoverProcesses(dataDir)).toEqual([])
  await fsp.rm(dataDir, { recursive: true, force: true })
})

const start = async (spec: Parameters<typeof startSpec>[0]) => {
  const s = await startSpec(spec)
  started.push(s)
  return s
}

/** SIGKILL from outside, then what a supervisor does: wait for the exit, close the scope. */
const kill = async (s: Started) => {
  process.kill(s.running.pid ?? 0, "SIGKILL")
  expect(formatExit(await Effect.runPromise(s.running.exit))).toBe("Killed(SIGKILL)")
  await s.stop()
}

it("100,000 lines, rotations, logwatch SIGKILLed twice, PostgreSQL restarted once: each line exactly once", async () => {
  dataDir = await tempDataDir()
  const port = await freePort()
  const pgSpec = postgresSpec({ dataDir, port, fastInit: true })
  const lwSpec = logwatchSpec({ dataDir, db: { port }, host: "test" })
  let postgres = await start(pgSpec)
  let logwatch: Started | undefined = await start(lwSpec)

  const logDir = path.join(dataDir, "log")
  const fds = new Map(COMPONENTS.map((c) => [c, fs.openSync(path.join(logDir, `${c}.log`), "a")]))
  let seq = 0
  const write = (component: string, n: number) => {
    let text = ""
    for (let i = 0; i < n; i++) {
      text += `${JSON.stringify({ ts: new Date().toISOString(), component, pid: 7, level: "info", msg: `${component} ${seq++}` })}\n`
    }
    fs.writeSync(fds.get(component) ?? -1, text)
  }
  /** rename rotation: the writer keeps appending to the renamed file for a moment, then reopens its path */
  const rotate = (component: string, suffix: string) => {
    const file = path.join(logDir, `${component}.log`)
    fs.renameSync(file, `${file}.${suffix}`)
    write(component, AFTER_RENAME)
    fs.closeSync(fds.get(component) ?? -1)
    fds.set(component, fs.openSync(file, "a"))
  }

  for (let tick = 0; tick < TICKS; tick++) {
    if (tick === 20 && logwatch) {
      await kill(logwatch)
      logwatch = await start(lwSpec)
    }
    if (tick === 35) rotate("alpha", "1")
    if (tick === 50) await kill(postgres)
    if (tick === 55) postgres = await start(pgSpec) // logwatch retried meanwhile
    if (tick === 75 && logwatch) {
      await kill(logwatch)
      logwatch = undefined
    }
    if (tick === 77) rotate("gamma", "1") // while logwatch is dead: the next one must find gamma.log.1
    if (tick === 80) rotate("alpha", "2")
    if (tick === 85) logwatch = await start(lwSpec)
    const rotated = tick === 35 || tick === 80 ? "alpha" : tick === 77 ? "gamma" : undefined
    for (const c of COMPONENTS) write(c, c === rotated ? PER_TICK - AFTER_RENAME : PER_TICK)
    await sleep(TICK_MS)
  }
  for (const fd of fds.values()) fs.closeSync(fd)
  expect(seq).toBe(TOTAL)

  const db = await TestCluster.of(dataDir, port)
  const count = async () =>
    Number((await db.query<{ n: string }>("SELECT count(*) AS n FROM log WHERE component = ANY($1)", [COMPONENTS]))[0]?.n)
  await waitFor(`${TOTAL} rows`, async () => (await count()) >= TOTAL, 60_000)
  await sleep(1_000) // nothing more may arrive
  expect(await count()).toBe(TOTAL)
  const dup = await db.query<{ msg: string }>(
    "SELECT msg FROM log WHERE component = ANY($1) GROUP BY msg HAVING count(*) > 1 LIMIT 5",
    [COMPONENTS],
  )
  expect(dup).toEqual([])
  const range = await db.query<{ n: string; lo: number; hi: number }>(
    `SELECT count(DISTINCT msg) AS n, min(split_part(msg, ' ', 2)::int) AS lo, max(split_part(msg, ' ', 2)::int) AS hi
     FROM log WHERE component = ANY($1)`,
    [COMPONENTS],
  )
  expect(range[0]).toEqual({ n: String(TOTAL), lo: 0, hi: TOTAL - 1 })
  // logwatch saw the outage and said so, without a line per batch
  const own = await db.query<{ msg: string }>("SELECT msg FROM log WHERE component = 'logwatch'")
  expect(own.length).toBeLessThan(50)
})
