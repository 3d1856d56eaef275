// postgres and logwatch under a real supervisor (one_for_one): SIGKILLs from outside are healed by restarts,
// and logwatch's lines still arrive exactly once.
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import * as path from "node:path"
import { Effect, Exit, Scope } from "effect"
import { afterEach, expect, it } from "vitest"
import { logwatchSpec } from "../../actors/logwatch.ts"
import { postgresSpec } from "../../actors/postgres.ts"
import type { ChildStatus } from "../../supervisors/child.ts"
import { make as makeSupervisor, type SupervisorHandle } from "../../supervisors/supervisor.ts"
import { freePort, leftoverProcesses, sleep, tempDataDir, TestCluster, waitFor } from "./fixture.ts"

const LINES = 20_000
const TICKS = 40

let dataDir = ""
let scope: Scope.Closeable | undefined

afterEach(async () => {
  if (scope) await Effect.runPromise(Scope.close(scope, Exit.void))
  scope = undefined
  expect(await leftoverProcesses(dataDir)).toEqual([])
  await fsp.rm(dataDir, { recursive: true, force: true })
})

const child = async (sup: SupervisorHandle, id: string): Promise<ChildStatus | undefined> =>
  (await Effect.runPromise(sup.children)).find((c) => c.id === id)

/** SIGKILL the child's process, then wait until the supervisor runs a new one. */
const killAndHeal = async (sup: SupervisorHandle, id: string) => {
  const before = await child(sup, id)
  process.kill(before?.pid ?? 0, "SIGKILL")
  return waitFor(`${id} restarted`, async () => {
    const now = await child(sup, id)
    return now?.state === "running" && now.pid !== before?.pid ? now : undefined
  })
}

it("heals SIGKILLed postgres and logwatch; every line shipped exactly once", async () => {
  dataDir = await tempDataDir()
  const port = await freePort()
  scope = await Effect.runPromise(Scope.make())
  const sup = await Effect.runPromise(Scope.provide(scope)(makeSupervisor({
    id: "store-and-logwatch",
    strategy: "one_for_one",
    intensity: 10,
    period: 10,
    backoff: { initial: "50 millis", max: "500 millis" },
    children: [
      postgresSpec({ dataDir, port, fastInit: true }),
      logwatchSpec({ dataDir, db: { port }, host: "test" }),
    ],
  })))
  const file = path.join(dataDir, "log", "app.log")
  let seq = 0
  for (let tick = 0; tick < TICKS; tick++) {
    if (tick === 10 || tick === 30) await killAndHeal(sup, "logwatch")
    if (tick === 20) await killAndHeal(sup, "postgres")
    let text = ""
    for (let i = 0; i < LINES / TICKS; i++) text += `${JSON.stringify({ component: "app", msg: `line ${seq++}` })}\n`
    fs.appendFileSync(file, text)
    await sleep(50)
  }
  const db = await TestCluster.of(dataDir, port)
  const counts = async () =>
    (await db.query<{ n: string; d: string }>("SELECT count(*) AS n, count(DISTINCT msg) AS d FROM log WHERE component = 'app'"))[0]
  await waitFor(`${LINES} rows`, async () => Number((await counts())?.n) >= LINES, 60_000)
  await sleep(500)
  expect(await counts()).toEqual({ n: String(LINES), d: String(LINES) })
  const status = await Effect.runPromise(sup.children)
  expect(status.map((c) => [c.id, c.restarts, c.lastExit?._tag])).toEqual([["postgres", 1, "Killed"], ["logwatch", 2, "Killed"]])
})
