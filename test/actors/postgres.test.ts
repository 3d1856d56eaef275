// The postgres actor against a real PostgreSQL 15: first start (initdb, migrations), reuse of the cluster,
// start after a SIGKILL, levels of its log lines, and nothing left running afterwards. Who gets in: no other uid
// reaches the socket, every connection needs its password, the service role is no superuser, and a cluster an
// older version made with `trust` is closed on its next start.
import { execFile, spawn } from "node:child_process"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Effect, Exit, Scope } from "effect"
import pg from "pg"
import { afterEach, describe, expect, it } from "vitest"
import { postgresLevel, postgresSpec } from "../../actors/postgres.ts"
import type { Running } from "../../supervisors/child.ts"
import { formatExit } from "../../supervisors/exit.ts"
import { clusterPaths, ensureSystemUser, findBinDir, prepareDirs } from "../../src/db/cluster.ts"
import { clusterCredentials, passwordFile } from "../../src/db/credentials.ts"
import { processesIn } from "../../src/db/leftovers.ts"
import { migrate } from "../../src/db/migrate.ts"
import { MIGRATIONS } from "../../src/db/schema.ts"
import { localUrl } from "../../src/db/url.ts"
import { freePort, leftoverProcesses, tempDataDir, TestCluster, waitFor } from "../logwatch/fixture.ts"

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

const db = (port: number) => TestCluster.of(dataDir, port)

/** `nobody`: a uid like a session's, in no group of ours */
const NOBODY = 65_534

/** psql as `nobody` (supplementary groups dropped), with `env` (PGPASSWORD, ...) and no password prompt. */
const psqlAsNobody = async (args: ReadonlyArray<string>, env: Readonly<Record<string, string>> = {}) => {
  const bin = await Effect.runPromise(findBinDir())
  return new Promise<{ code: number; out: string }>((resolve) => {
    execFile(
      path.join(bin, "psql"),
      ["-X", "-w", "-At", ...args, "-c", "SELECT current_user"],
      { uid: NOBODY, gid: NOBODY, env: { PATH: "/usr/bin:/bin", ...env }, timeout: 10_000 },
      (error, stdout, stderr) => resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, out: `${stdout}${stderr}` }),
    )
  })
}

/** A single connection to `url`; fails as PostgreSQL (or the client) refused it. */
const connectOnce = async (url: string): Promise<void> => {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 })
  client.on("error", () => {})
  await client.connect()
  await client.end()
}

/** The SQLSTATE a promise rejected with. */
const sqlState = (promise: Promise<unknown>): Promise<string | undefined> =>
  promise.then(
    () => "no error",
    (e: unknown) => (typeof e === "object" && e !== null && "code" in e ? String(e.code) : `no code: ${String(e)}`),
  )


/** What the superuser sees; for checks the service role may not make (pg_hba_file_rules). */
const asSuperuser = async <R extends pg.QueryResultRow>(port: number, sql: string): Promise<ReadonlyArray<R>> => {
  const client = new pg.Client({ connectionString: localUrl(port, (await clusterCredentials(dataDir)).superuser, "postgres") })
  client.on("error", () => {})
  await client.connect()
  try {
    return (await client.query<R>(sql)).rows
  } finally {
    await client.end()
  }
}

/**
 * A cluster as sagews made it before passwords: initdb -A trust, its socket directory 0755, the database migrated
 * by `postgres` without a password, one row in it; stopped again.
 */
const legacyTrustCluster = async (port: number): Promise<void> => {
  const user = await Effect.runPromise(ensureSystemUser)
  const bin = await Effect.runPromise(findBinDir())
  const p = clusterPaths(dataDir)
  await Effect.runPromise(prepareDirs(dataDir, user))
  await fs.chmod(p.socketDir, 0o755)
  await new Promise<void>((resolve, reject) =>
    execFile(
      path.join(bin, "initdb"),
      ["-D", p.pg, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
      { uid: user.uid, gid: user.gid, env: { PATH: "/usr/bin:/bin", LC_ALL: "C.UTF-8" } },
      (error) => (error === null ? resolve() : reject(error)),
    ))
  const postmaster = spawn(
    path.join(bin, "postgres"),
    ["-D", p.pg, "-p", String(port), "-k", p.socketDir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
    { uid: user.uid, gid: user.gid, stdio: "ignore", detached: true },
  )
  const exited = new Promise((resolve) => postmaster.once("exit", resolve))
  try {
    const trustUrl = `postgres://postgres@127.0.0.1:${port}`
    await waitFor("the trust cluster", async () => {
      await connectOnce(`${trustUrl}/postgres`)
      return true
    })
    const admin = new pg.Client({ connectionString: `${trustUrl}/postgres` })
    await admin.connect()
    await admin.query("CREATE DATABASE sagews")
    await admin.end()
    await Effect.runPromise(migrate(`${trustUrl}/sagews`))
    const client = new pg.Client({ connectionString: `${trustUrl}/sagews` })
    await client.connect()
    await client.query("INSERT INTO log (host, component, ts, level, msg) VALUES ('h', 'c', now(), 'info', 'from the trust days')")
    await client.end()
  } finally {
    postmaster.kill("SIGINT")
    await exited
    await waitFor("the trust cluster's backends to exit", async () => (await processesIn(p.pg)).length === 0)
  }
}

/** What a session's uid gets from the cluster: its socket with the right password, loopback without one. */
const nobodyIsRefused = async (port: number) => {
  const { superuser } = await clusterCredentials(dataDir)
  const { socketDir } = clusterPaths(dataDir)
  const viaSocket = await psqlAsNobody(["-h", socketDir, "-p", String(port), "-U", "postgres", "-d", "postgres"], { PGPASSWORD: superuser.password })
  expect(viaSocket.code).not.toBe(0)
  expect(viaSocket.out).toMatch(/\.s\.PGSQL\.\d+" failed: Permission denied/)
  const viaTcp = await psqlAsNobody(["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", "postgres"])
  expect(viaTcp.code).not.toBe(0)
  expect(viaTcp.out).toMatch(/no password supplied/)
  expect(await sqlState(connectOnce(`postgres://postgres:not-the-password@127.0.0.1:${port}/postgres`))).toBe("28P01")
  expect(new Set((await asSuperuser<{ auth_method: string }>(port, "SELECT auth_method FROM pg_hba_file_rules")).map((r) => r.auth_method)))
    .toEqual(new Set(["scram-sha-256"]))
}

describe("postgres actor", () => {
  it("first start runs initdb and the migrations; a second start reuses the cluster and its data", async () => {
    dataDir = await tempDataDir()
    const port = await freePort()
    const first = await start(port)
    expect((await fs.stat(dataDir)).mode & 0o777).toBe(0o711)
    expect(await fs.readFile(path.join(dataDir, "pg", "PG_VERSION"), "utf8")).toBe("15\n")
    const versions = await (await db(port)).query<{ version: number }>("SELECT version FROM schema_migrations ORDER BY version")
    expect(versions.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version))
    await (await db(port)).query("INSERT INTO log (host, component, ts, level, msg) VALUES ('h', 'c', now(), 'info', 'kept')")
    expect(first.running.port).toBe(port)
    await first.stop()
    expect(formatExit(await Effect.runPromise(first.running.exit))).toBe("Shutdown")

    const versionFile = await fs.stat(path.join(dataDir, "pg", "PG_VERSION"))
    const second = await start(port)
    expect((await fs.stat(path.join(dataDir, "pg", "PG_VERSION"))).mtimeMs).toBe(versionFile.mtimeMs)
    expect(await (await db(port)).query<{ msg: string }>("SELECT msg FROM log")).toEqual([{ msg: "kept" }])
    expect(await (await db(port)).query("SELECT version FROM schema_migrations")).toHaveLength(MIGRATIONS.length)
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
    const held = await db(port)
    const holder = held.query("SELECT pg_sleep(30)").catch((e: unknown) => e)
    await new Promise((resolve) => setTimeout(resolve, 200))
    process.kill(first.running.pid ?? 0, "SIGKILL")
    expect(formatExit(await Effect.runPromise(first.running.exit))).toBe("Killed(SIGKILL)")
    await holder
    await first.stop()
    const second = await start(port)
    expect(await (await db(port)).query("SELECT 1 AS one")).toEqual([{ one: 1 }])
    await second.stop()
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
    expect(await (await db(outside.port)).query("SELECT 1 AS one")).toEqual([{ one: 1 }])
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

  it("lets no other uid reach its socket, asks every connection for a password, and keeps the passwords private", async () => {
    if (process.getuid?.() !== 0) return // only root can run a client as another uid
    dataDir = await tempDataDir()
    const port = await freePort()
    const pgActor = await start(port)
    const { socketDir, pg: pgDir } = clusterPaths(dataDir)
    const st = await fs.stat(socketDir)
    expect((st.mode & 0o777).toString(8)).toBe("700")
    expect(st.uid).toBe((await Effect.runPromise(ensureSystemUser)).uid)
    await nobodyIsRefused(port)
    // Over loopback it is the password that counts: nobody with the service role's gets in.
    const { superuser, service } = await clusterCredentials(dataDir)
    const withPassword = await psqlAsNobody(["-h", "127.0.0.1", "-p", String(port), "-U", service.user, "-d", "sagews"], { PGPASSWORD: service.password })
    expect(withPassword.out.trim()).toBe("sagews")
    for (const role of [superuser.user, service.user]) {
      const file = await fs.stat(passwordFile(dataDir, role))
      expect([(file.mode & 0o777).toString(8), file.uid]).toEqual(["600", 0])
    }
    expect((await fs.stat(path.join(dataDir, "secret"))).mode & 0o777).toBe(0o700)
    for (const pid of await processesIn(pgDir)) {
      const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, "utf8")
      expect(cmdline).not.toContain(superuser.password)
      expect(cmdline).not.toContain(service.password)
    }
    await pgActor.stop()
  })

  it("connects the service as a role that is no superuser, runs no programs and reaches no other database", async () => {
    dataDir = await tempDataDir()
    const port = await freePort()
    const pgActor = await start(port)
    const service = await db(port)
    expect(await service.query("SELECT current_user AS name, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls FROM pg_roles WHERE rolname = current_user"))
      .toEqual([{ name: "sagews", rolsuper: false, rolcreaterole: false, rolcreatedb: false, rolreplication: false, rolbypassrls: false }])
    expect(await service.query("SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = 'sagews'")).toEqual([{ owner: "sagews" }])
    for (const sql of [
      "COPY (SELECT 1) TO PROGRAM 'id'",
      "COPY log FROM PROGRAM 'id'",
      "SELECT pg_read_file('/etc/passwd')",
      "ALTER ROLE sagews SUPERUSER",
      "CREATE ROLE intruder",
      "DELETE FROM schema_migrations",
    ]) expect([sql, await sqlState(service.query(sql))]).toEqual([sql, "42501"]) // insufficient_privilege
    expect(await sqlState(connectOnce(service.url.replace(/\/sagews$/, "/postgres")))).toBe("42501")
    // what the backends and logwatch do, it can
    await service.query("INSERT INTO log (host, component, ts, level, msg) VALUES ('h', 'c', now(), 'info', 'ok')")
    await service.query("INSERT INTO workers (id, host, port) VALUES ('worker:1', '127.0.0.1', 1)")
    await service.query("UPDATE workers SET heartbeat_at = now() WHERE id = 'worker:1'")
    await service.query("DELETE FROM workers")
    await pgActor.stop()
  })

  it("closes a cluster that an older version made with trust on its next start, and keeps its data", async () => {
    dataDir = await tempDataDir()
    const port = await freePort()
    await legacyTrustCluster(port)
    const upgraded = await start(port)
    expect(await (await db(port)).query<{ msg: string }>("SELECT msg FROM log")).toEqual([{ msg: "from the trust days" }])
    expect(await fs.readFile(path.join(dataDir, "pg", "pg_hba.conf"), "utf8")).not.toMatch(/\btrust\b/)
    expect((await fs.stat(clusterPaths(dataDir).socketDir)).mode & 0o777).toBe(0o700)
    expect(await sqlState(connectOnce(`postgres://postgres@127.0.0.1:${port}/postgres`))).not.toBe("no error")
    if (process.getuid?.() === 0) await nobodyIsRefused(port)
    await upgraded.stop()
    // Every start sets the passwords from the files: lost files are made anew and the cluster follows.
    await fs.rm(passwordFile(dataDir, "postgres"))
    await fs.rm(passwordFile(dataDir, "sagews"))
    const again = await start(port)
    expect(await (await db(port)).query<{ msg: string }>("SELECT msg FROM log")).toEqual([{ msg: "from the trust days" }])
    await again.stop()
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
