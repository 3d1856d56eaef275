// The postgres actor against a real PostgreSQL 15: first start (initdb, migrations), reuse of the cluster,
// start after a SIGKILL, levels of its log lines, and nothing left running afterwards.
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Effect, Exit, Scope } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { postgresLevel, postgresSpec } from "../../actors/postgres.ts"
import type { Running } from "../../supervisors/child.ts"
import { formatExit } from "../../supervisors/exit.ts"
import { processesIn } from "../../src/db/leftovers.ts"
import { localUrl } from "../../src/db/url.ts"
import { freePort, leftoverProcesses, tempDataDir, TestCluster } from "../logwatch/fixture.ts"

let dataDir = ""
/** stops everything a test started, even when it failed halfway */
let cleanup: Array<() => Promise<unknown>> = []

afterEach(async () => {
  for (const f of cleanup.reverse()) await f()
  cleanup = []
  expect(await leftoverProcesses(dataDir)).toEqual([])
  await fs.rm(dataDir, { recursive: true, force: true })
})

const start = async (port: number, liveness?: { interval: number; timeout: number; failures: number }) => {
  const scope = await Effect.runPromise(Scope.make())
  const spec = postgresSpec({ dataDir, port, fastInit: true, ...(liveness ? { liveness } : {}) })
  const exit = await Effect.runPromiseExit(Scope.provide(scope)(spec.start))
  if (Exit.isFailure(exit)) {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    throw new Error(`postgres did not start: ${JSON.stringify(exit.cause)}`)
  }
  const stop = () => Effect.runPromise(Scope.close(scope, Exit.void))
  cleanup.push(stop)
  const running: Running = exit.value
  return { running, stop }
}

const db = (port: number) => new TestCluster(dataDir, port)

describe("postgres actor", () => {
  it("first start runs initdb and the migrations; a second start reuses the cluster and its data", async () => {
    dataDir = await tempDataDir()
    const port = await freePort()
    const first = await start(port)
    expect((await fs.stat(dataDir)).mode & 0o777).toBe(0o711)
    expect(await fs.readFile(path.join(dataDir, "pg", "PG_VERSION"), "utf8")).toBe("15\n")
    const versions = await db(port).query<{ version: number }>("SELECT version FROM schema_migrations ORDER BY version")
    expect(versions.map((r) => r.version)).toEqual([1, 2])
    await db(port).query("INSERT INTO log (host, component, ts, level, msg) VALUES ('h', 'c', now(), 'info', 'kept')")
    expect(first.running.port).toBe(port)
    await first.stop()
    expect(formatExit(await Effect.runPromise(first.running.exit))).toBe("Shutdown")

    const versionFile = await fs.stat(path.join(dataDir, "pg", "PG_VERSION"))
    const second = await start(port)
    expect((await fs.stat(path.join(dataDir, "pg", "PG_VERSION"))).mtimeMs).toBe(versionFile.mtimeMs)
    expect(await db(port).query<{ msg: string }>("SELECT msg FROM log")).toEqual([{ msg: "kept" }])
    expect(await db(port).query("SELECT version FROM schema_migrations")).toHaveLength(2)
    await second.stop()

    const log = await fs.readFile(path.join(dataDir, "log", "postgres.log"), "utf8")
    const ready = log.split("\n").filter((l) => l.includes("ready to accept connections")).map((l) => JSON.parse(l))
    expect(ready.length).toBe(2)
    expect(ready[0].level).toBe("info")
  })

  it("starts again after its postmaster was SIGKILLed", async () => {
    dataDir = await tempDataDir()
    const port = await freePort()
    const first = await start(port)
    // an open session, so the postmaster has a backend when it dies
    const held = db(port)
    const holder = held.query("SELECT pg_sleep(30)").catch((e: unknown) => e)
    await new Promise((resolve) => setTimeout(resolve, 200))
    process.kill(first.running.pid ?? 0, "SIGKILL")
    expect(formatExit(await Effect.runPromise(first.running.exit))).toBe("Killed(SIGKILL)")
    await holder
    await first.stop()
    const second = await start(port)
    expect(await db(port).query("SELECT 1 AS one")).toEqual([{ one: 1 }])
    await second.stop()
    expect(localUrl(port)).toBe(`postgres://postgres@127.0.0.1:${port}/sagews`)
  })

  it("starts after a postmaster killed outside the actor left its backends and postmaster.pid", async () => {
    dataDir = await tempDataDir()
    const outside = await TestCluster.create(dataDir)
    cleanup.push(() => outside.stop("SIGKILL"))
    await outside.start()
    const holder = outside.query("SELECT pg_sleep(30)").catch((e: unknown) => e)
    await new Promise((resolve) => setTimeout(resolve, 200))
    // Stopped backends cannot notice their postmaster's death: they keep its shared memory attached.
    const postmaster = outside.process?.pid ?? 0
    const backends = (await processesIn(path.join(dataDir, "pg"))).filter((pid) => pid !== postmaster)
    expect(backends.length).toBeGreaterThan(0)
    for (const pid of backends) process.kill(pid, "SIGSTOP")
    process.kill(postmaster, "SIGKILL") // the postmaster only, not its group
    const actor = await start(outside.port)
    expect(await db(outside.port).query("SELECT 1 AS one")).toEqual([{ one: 1 }])
    const running = await processesIn(path.join(dataDir, "pg"))
    expect(backends.filter((pid) => running.includes(pid))).toEqual([]) // ended (zombies at most, PID 1 reaps them)
    await actor.stop()
    await holder
    await outside.stop()
  })

  it("is killed by its liveness probe when it hangs (SIGSTOP)", async () => {
    dataDir = await tempDataDir()
    const pg = await start(await freePort(), { interval: 300, timeout: 300, failures: 2 })
    process.kill(pg.running.pid ?? 0, "SIGSTOP")
    expect(formatExit(await Effect.runPromise(pg.running.exit))).toBe("Timeout(liveness)")
    await pg.stop()
  })

  it("maps postgres severities to log levels", () => {
    const at = "2026-11-22 10:00:00.000 UTC [42] "
    expect(postgresLevel(`${at}LOG:  database system is ready to accept connections`)).toBe("info")
    expect(postgresLevel(`${at}WARNING:  could not flush dirty data`)).toBe("warn")
    expect(postgresLevel(`${at}ERROR:  relation "x" does not exist`)).toBe("error")
    expect(postgresLevel(`${at}FATAL:  role "x" does not exist`)).toBe("fatal")
    expect(postgresLevel(`${at}PANIC:  could not write`)).toBe("fatal")
    expect(postgresLevel(`${at}DEBUG2:  checkpoint`)).toBe("debug")
    expect(postgresLevel("initdb: some plain line")).toBe("info")
  })
})
