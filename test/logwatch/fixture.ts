// Test fixtures for logwatch: a real PostgreSQL cluster in a temp data dir (started with a plain spawn), logwatch
// as a child process, free ports, and the check that nothing of a test is left running.
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Exit, Scope } from "effect"
import type { ChildSpec, Running } from "../../supervisors/child.ts"
import pg from "pg"
import { prepareCluster, prepareOwnDatabase } from "../../actors/postgres.ts"
import { childDb } from "../../actors/childdb.ts"
import { clusterPaths } from "../../src/db/cluster.ts"
import { clusterCredentials, type ClusterCredentials } from "../../src/db/credentials.ts"
import { processesIn } from "../../src/db/leftovers.ts"
import { localUrl } from "../../src/db/url.ts"
import { livingProcesses } from "../../actors/procstat.ts"
import { freePort } from "../ports.ts"
export { freePort }

export const ROOT = path.resolve(import.meta.dirname, "../..")

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export const tempDataDir = async (): Promise<string> => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "sagews-lw-"))
  await fsp.mkdir(path.join(dir, "log"), { recursive: true })
  return dir
}

/** Waits until `check` resolves truthy, polling; fails with `what` after `timeout` ms. */
export const waitFor = async <A>(what: string, check: () => Promise<A | undefined | false>, timeout = 30_000): Promise<A> => {
  const deadline = Date.now() + timeout
  let lastError: unknown
  while (Date.now() < deadline) {
    try {
      const value = await check()
      if (value !== undefined && value !== false) return value
    } catch (error) {
      lastError = error
    }
    await sleep(50)
  }
  throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`)
}

/**
 * A cluster started and stopped by hand (not through the supervision tree), prepared as the postgres actor does;
 * `url` is the service role's (the one the backends and logwatch use), `credentials` are read from the data dir.
 */
export class TestCluster {
  process: ChildProcess | undefined
  readonly dataDir: string
  readonly port: number
  private credentials: ClusterCredentials | undefined
  constructor(dataDir: string, port: number, credentials?: ClusterCredentials) {
    this.dataDir = dataDir
    this.port = port
    this.credentials = credentials
  }
  /** A cluster of a data dir whose passwords exist already (the actor started it, or `create` did). */
  static async of(dataDir: string, port: number): Promise<TestCluster> {
    return new TestCluster(dataDir, port, await clusterCredentials(dataDir))
  }
  private get roles(): ClusterCredentials {
    if (this.credentials === undefined) throw new Error("TestCluster: use TestCluster.of or TestCluster.create, which read the passwords")
    return this.credentials
  }
  get url(): string {
    return localUrl(this.port, this.roles.service)
  }
  get superuserUrl(): string {
    return localUrl(this.port, this.roles.superuser)
  }

  static async create(dataDir: string): Promise<TestCluster> {
    const prepared = await Effect.runPromise(prepareCluster(dataDir, { fastInit: true }))
    return new TestCluster(dataDir, await freePort(), prepared.credentials)
  }

  async start(): Promise<void> {
    const { user, binDir, credentials } = await Effect.runPromise(prepareCluster(this.dataDir, { fastInit: true }))
    this.credentials = credentials
    const p = clusterPaths(this.dataDir)
    const log = fs.openSync(path.join(this.dataDir, "postgres-test.out"), "a")
    this.process = spawn(
      path.join(binDir, "postgres"),
      ["-D", p.pg, "-p", String(this.port), "-k", p.socketDir, "-c", "listen_addresses=127.0.0.1"],
      { uid: user.uid, gid: user.gid, stdio: ["ignore", log, log], detached: true },
    )
    fs.closeSync(log)
    await waitFor("postgres to accept connections", async () => {
      await Effect.runPromise(prepareOwnDatabase(this.port, credentials))
      return true
    })
  }

  /** SIGINT (fast shutdown) or SIGKILL; waits for the postmaster and every backend to be gone. */
  async stop(signal: NodeJS.Signals = "SIGINT"): Promise<void> {
    const child = this.process
    this.process = undefined
    if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once("exit", resolve))
    child.kill(signal)
    await exited
    const pgDir = clusterPaths(this.dataDir).pg
    await waitFor("postgres backends to exit", async () => (await processesIn(pgDir)).length === 0, 10_000)
  }

  async query<R extends pg.QueryResultRow>(sql: string, params: ReadonlyArray<unknown> = []): Promise<ReadonlyArray<R>> {
    const client = new pg.Client({ connectionString: this.url })
    client.on("error", () => {}) // the server may die under a test; the query then rejects
    await client.connect()
    try {
      return (await client.query<R>(sql, [...params])).rows
    } finally {
      await client.end()
    }
  }
}

/** A child spec started in its own scope, as a supervisor would; `stop` closes the scope (idempotent). */
export interface Started {
  readonly running: Running
  readonly stop: () => Promise<void>
}

export const startSpec = async (spec: ChildSpec): Promise<Started> => {
  const scope = await Effect.runPromise(Scope.make())
  const stop = () => Effect.runPromise(Scope.close(scope, Exit.void))
  const exit = await Effect.runPromiseExit(Scope.provide(scope)(spec.start))
  if (Exit.isFailure(exit)) {
    await stop()
    throw new Error(`${spec.id} did not start: ${JSON.stringify(exit.cause)}`)
  }
  return { running: exit.value, stop }
}

/**
 * logwatch as a child process, given the database as the actor gives it (the password in its environment); its
 * stdout goes to <data>/log/logwatch.log as the process actor would write it.
 */
export const startLogwatch = (dataDir: string, dbUrl: string, host = "test"): ChildProcess => {
  const out = fs.openSync(path.join(dataDir, "log", "logwatch.log"), "a")
  const err = fs.openSync(path.join(dataDir, "logwatch.stderr"), "a")
  const db = childDb(dbUrl)
  const child = spawn(
    process.execPath,
    [path.join(ROOT, "src/logwatch/main.ts"), "--data", dataDir, "--db", db.url, "--host", host],
    { stdio: ["ignore", out, err], env: { ...process.env, ...db.env } },
  )
  fs.closeSync(out)
  fs.closeSync(err)
  return child
}

/** Resolves once logwatch's liveness socket answers `ok`. */
export const logwatchReady = (dataDir: string): Promise<true> =>
  waitFor("logwatch's liveness socket", () =>
    new Promise<true | undefined>((resolve) => {
      const socket = net.connect(path.join(dataDir, "run", "logwatch.sock"))
      let data = ""
      socket.on("data", (chunk) => (data += chunk.toString()))
      socket.on("end", () => resolve(data === "ok\n" ? true : undefined))
      socket.on("error", () => resolve(undefined))
    }), 10_000)

export const stopChild = async (child: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> => {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  child.kill(signal)
  return exited
}

/** Live processes that belong to a test data dir: anything with the dir on its command line or as its cwd. */
export const leftoverProcesses = async (dataDir: string): Promise<ReadonlyArray<string>> => {
  const inPg = new Set(await processesIn(clusterPaths(dataDir).pg))
  return livingProcesses((p) => inPg.has(p.pid) || p.cmdline.includes(dataDir)).map((p) => `${p.pid} ${p.cmdline}`)
}
