// logwatchSpec under the process actor: ready on its socket, ships, SIGKILL reported as Killed, SIGTERM as Shutdown;
// told the database with the password in its environment, never on its (world-readable) command line.
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Effect, Exit, Scope } from "effect"
import { afterEach, expect, it } from "vitest"
import { logwatchSpec } from "../../actors/logwatch.ts"
import { formatExit } from "../../supervisors/exit.ts"
import { leftoverProcesses, tempDataDir, TestCluster, waitFor } from "./fixture.ts"

let dataDir = ""
let cluster: TestCluster | undefined
let scopes: Array<Scope.Closeable> = []

afterEach(async () => {
  for (const scope of scopes) await Effect.runPromise(Scope.close(scope, Exit.void))
  scopes = []
  await cluster?.stop()
  expect(await leftoverProcesses(dataDir)).toEqual([])
  await fs.rm(dataDir, { recursive: true, force: true })
})

it("runs under the process actor: ready on its socket, ships, restarts from its committed offsets", async () => {
  dataDir = await tempDataDir()
  const db = await TestCluster.create(dataDir)
  cluster = db
  await db.start()
  const spec = logwatchSpec({ dataDir, db: { port: db.port }, host: "h1" })
  const file = path.join(dataDir, "log", "worker:1.log")
  const count = async () => Number((await db.query<{ n: string }>("SELECT count(*) AS n FROM log WHERE component = 'worker:1'"))[0]?.n)

  const scope1 = await Effect.runPromise(Scope.make())
  scopes.push(scope1)
  const first = await Effect.runPromise(Scope.provide(scope1)(spec.start))
  const { password } = new URL(db.url)
  expect(await fs.readFile(`/proc/${first.pid}/cmdline`, "utf8")).not.toContain(password)
  expect((await fs.readFile(`/proc/${first.pid}/environ`, "utf8")).split("\0")).toContain(`PGPASSWORD=${password}`)
  await fs.appendFile(file, "one\ntwo\n")
  await waitFor("2 rows", async () => (await count()) === 2)
  process.kill(first.pid ?? 0, "SIGKILL")
  expect(formatExit(await Effect.runPromise(first.exit))).toBe("Killed(SIGKILL)")
  await Effect.runPromise(Scope.close(scope1, Exit.void))

  await fs.appendFile(file, "three\n")
  const scope2 = await Effect.runPromise(Scope.make())
  scopes.push(scope2)
  const second = await Effect.runPromise(Scope.provide(scope2)(spec.start))
  await waitFor("3 rows", async () => (await count()) === 3)
  await Effect.runPromise(Scope.close(scope2, Exit.void))
  expect(formatExit(await Effect.runPromise(second.exit))).toBe("Shutdown")
  const rows = await db.query<{ msg: string; host: string }>("SELECT msg, host FROM log WHERE component = 'worker:1' ORDER BY id")
  expect(rows).toEqual([{ msg: "one", host: "h1" }, { msg: "two", host: "h1" }, { msg: "three", host: "h1" }])
  const own = await fs.readFile(path.join(dataDir, "log", "logwatch.log"), "utf8")
  expect(own).toContain("started: shipping")
})
